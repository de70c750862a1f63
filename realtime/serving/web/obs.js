// The OBS page: one session's generated target, full-window, for an OBS Browser Source (or any full screen).
// URL: /obs?session=N[&background=green|plate|target][&colour=%23RRGGBB][&token=...]
//   background=green (default): the target over chroma-key green (#00b140) for OBS's Chroma Key filter;
//   background=plate: over a plain colour (colour=..., default mid grey);
//   background=target: the generated frames as they are, the target's own background.
// The video comes by WHEP from this server (POST /whep/N with an SDP offer; no trickle ICE). For the green and
// plain backdrops the target's own background is estimated as the per-pixel median of frames sampled over the
// last few seconds (the background stands still while the person moves; vid2vid's and every clean-plate
// method's assumption), and each pixel within KEY_THRESHOLD of it is replaced by the backdrop colour.
// The page retries every few seconds until the session streams, so it can be added to OBS before the dance.
"use strict";

const params = new URLSearchParams(location.search);
const SESSION = params.get("session");
const TOKEN = params.get("token");
const BACKGROUND = params.get("background") || "green";
const BACKDROPS = { green: "#00b140", plate: params.get("colour") || "#808080" };
const RETRY_MS = 3000;
const ICE_GATHERING_TIMEOUT_MS = 5000;
const SAMPLE_EVERY_MS = 400; // background samples: one every 0.4 s ...
const SAMPLES = 15; // ... the last 15 (6 s) ...
const MEDIAN_EVERY_MS = 2000; // ... their median recomputed every 2 s
const KEY_THRESHOLD = 40; // sum over R, G, B of |frame - background| below this: background

const video = document.getElementById("video");
const canvas = document.getElementById("canvas");
const note = document.getElementById("note");
const context = canvas.getContext("2d", { willReadFrequently: true });

// State, also read by the tests (tests/realtime/serving/test_obs_page.py).
const obs = { status: "starting", frames: 0, keyedFraction: null, backgroundReady: false, errors: [] };
window.obs = obs;

function say(text) {
  obs.status = text;
  note.textContent = text;
}

function fail(text) {
  obs.errors.push(text);
  say(text);
}

// -- WHEP ----------------------------------------------------------------------------------------------------

let pc = null;
let resource = null;

function headers() {
  const h = { "Content-Type": "application/sdp" };
  if (TOKEN) h.Authorization = `Bearer ${TOKEN}`;
  return h;
}

function iceGatheringComplete(peer) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (peer.iceGatheringState === "complete") resolve();
    };
    peer.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ICE_GATHERING_TIMEOUT_MS);
  });
}

async function play() {
  if (!SESSION) {
    fail("give the session to show: /obs?session=N (the live page shows the link)");
    return;
  }
  const peer = new RTCPeerConnection();
  pc = peer;
  peer.addTransceiver("video", { direction: "recvonly" });
  peer.ontrack = (event) => {
    video.srcObject = new MediaStream([event.track]);
  };
  peer.onconnectionstatechange = () => {
    if (peer !== pc) return;
    if (peer.connectionState === "connected") say("");
    if (peer.connectionState === "failed" || peer.connectionState === "closed") retry("the connection ended");
  };
  await peer.setLocalDescription(await peer.createOffer());
  await iceGatheringComplete(peer);
  let response;
  try {
    const query = new URLSearchParams({ view: "target" });
    response = await fetch(`whep/${encodeURIComponent(SESSION)}?${query}`, {
      method: "POST",
      headers: headers(),
      body: peer.localDescription.sdp,
    });
  } catch (err) {
    retry(`cannot reach the server: ${err.message}`);
    return;
  }
  if (response.status !== 201) {
    const line = (await response.text()).trim();
    if (response.status === 401 || response.status === 403) {
      fail(`${line} (HTTP ${response.status})`); // a wrong link: retrying would not help
      return;
    }
    retry(`${line} (HTTP ${response.status})`);
    return;
  }
  resource = response.headers.get("Location");
  await peer.setRemoteDescription({ type: "answer", sdp: await response.text() });
  say("connecting...");
}

function retry(why) {
  if (pc) pc.close();
  pc = null;
  resource = null;
  say(`waiting for session ${SESSION}: ${why}; retrying`);
  setTimeout(play, RETRY_MS);
}

window.addEventListener("pagehide", () => {
  if (resource) fetch(resource, { method: "DELETE", headers: headers(), keepalive: true });
});

// -- the backdrop --------------------------------------------------------------------------------------------

const samples = [];
let background = null; // Uint8ClampedArray RGBA, the per-pixel median of the samples
let lastSampleMs = -Infinity;
let lastMedianMs = -Infinity;

function median(values, count) {
  values.subarray(0, count).sort();
  return values[count >> 1];
}

function updateBackground(pixels, nowMs) {
  if (nowMs - lastSampleMs >= SAMPLE_EVERY_MS) {
    lastSampleMs = nowMs;
    samples.push(pixels.slice());
    if (samples.length > SAMPLES) samples.shift();
  }
  const size = pixels.length;
  if (background && background.length !== size) background = null;
  if (samples.length < 3 || nowMs - lastMedianMs < MEDIAN_EVERY_MS) return;
  lastMedianMs = nowMs;
  const usable = samples.filter((s) => s.length === size);
  const next = new Uint8ClampedArray(size);
  const values = new Uint8Array(usable.length);
  for (let i = 0; i < size; i += 1) {
    if ((i & 3) === 3) {
      next[i] = 255;
      continue;
    }
    for (let k = 0; k < usable.length; k += 1) values[k] = usable[k][i];
    next[i] = median(values, usable.length);
  }
  background = next;
  obs.backgroundReady = true;
}

function hexColour(text) {
  const match = /^#?([0-9a-f]{6})$/i.exec(text);
  const value = match ? parseInt(match[1], 16) : 0x808080;
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

function key(frame, backdrop) {
  const pixels = frame.data;
  let keyed = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const distance =
      Math.abs(pixels[i] - background[i]) +
      Math.abs(pixels[i + 1] - background[i + 1]) +
      Math.abs(pixels[i + 2] - background[i + 2]);
    if (distance < KEY_THRESHOLD) {
      pixels[i] = backdrop[0];
      pixels[i + 1] = backdrop[1];
      pixels[i + 2] = backdrop[2];
      keyed += 1;
    }
  }
  obs.keyedFraction = keyed / (pixels.length / 4);
}

function onFrame(nowMs) {
  obs.frames += 1;
  const { videoWidth: width, videoHeight: height } = video;
  if (width && height) {
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    context.drawImage(video, 0, 0, width, height);
    const frame = context.getImageData(0, 0, width, height);
    updateBackground(frame.data, nowMs);
    if (background) {
      key(frame, hexColour(BACKDROPS[BACKGROUND]));
      context.putImageData(frame, 0, 0);
    }
  }
  video.requestVideoFrameCallback(onFrame);
}

if (BACKGROUND === "target") {
  document.body.classList.add("as-is");
} else if (BACKGROUND in BACKDROPS) {
  document.body.style.setProperty("--backdrop", BACKDROPS[BACKGROUND]);
  video.requestVideoFrameCallback(onFrame);
} else {
  fail(`unknown background ${BACKGROUND}: use green, plate or target`);
}
if (BACKGROUND === "target") video.requestVideoFrameCallback(function count() {
  obs.frames += 1;
  video.requestVideoFrameCallback(count);
});
play();
