// The OBS page: one session's generated target, full-window, for an OBS Browser Source (or any full screen).
// URL: /obs?session=N[&background=green|plate|target][&colour=%23RRGGBB][&token=...]
//   background=green (default): the target over chroma-key green (#00b140) for OBS's Chroma Key filter;
//   background=plate: over a plain colour (colour=..., default mid grey);
//   background=target: the generated frames as they are, the target's own background.
// The video comes by WHEP from this server (POST /whep/N with an SDP offer; no trickle ICE). For the green and
// plain backdrops the page plays the side-by-side view: the stick figure says where the person is (pixels
// far from it are backdrop), and near it a pixel within KEY_THRESHOLD of the target's own background (the
// per-pixel median of the last 20 s of frames, taken only where the person was not near) is backdrop too.
// Until 6 s of samples exist the generated frames show as they are.
// The page retries every few seconds until the session streams, so it can be added to OBS before the dance.
"use strict";

const params = new URLSearchParams(location.search);
const SESSION = params.get("session");
const TOKEN = params.get("token");
const BACKGROUND = params.get("background") || "green";
const BACKDROPS = { green: "#00b140", plate: params.get("colour") || "#808080" };
const RETRY_MS = 3000;
const ICE_GATHERING_TIMEOUT_MS = 5000;
const SAMPLE_EVERY_MS = 500; // background samples: one every 0.5 s ...
const SAMPLES = 40; // ... the last 40 (20 s) ...
const MIN_SAMPLES = 12; // ... at least 12 (6 s) before the backdrop is shown ...
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
    const query = new URLSearchParams({ view: BACKGROUND === "target" ? "target" : "side_by_side" });
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
// The video is stick figure | generated (view=side_by_side). Where the person is comes from the stick
// figure, blurred to about a body's width (NEAR_FRACTION of the canvas height): pixels far from it are
// backdrop; near it, a pixel is the person unless it matches the target's background, estimated per pixel
// as the median of the samples in which the person was not near that pixel.

const NEAR_FRACTION = 0.06;
const stickCanvas = document.createElement("canvas");
const stickContext = stickCanvas.getContext("2d", { willReadFrequently: true });
const sourceCanvas = document.createElement("canvas");
const sourceContext = sourceCanvas.getContext("2d", { willReadFrequently: true });
const samples = []; // {pixels: RGBA of the generated half, near: 1 where the person was near}
let background = null; // Uint8ClampedArray RGBA (alpha 0 where no sample saw the background)
let lastSampleMs = -Infinity;
let lastMedianMs = -Infinity;

function nearMask(width, height) {
  const radius = Math.max(2, Math.round(NEAR_FRACTION * height));
  stickCanvas.width = width;
  stickCanvas.height = height;
  stickContext.filter = `blur(${radius}px)`;
  stickContext.drawImage(sourceCanvas, 0, 0, width, height, 0, 0, width, height);
  const blurred = stickContext.getImageData(0, 0, width, height).data;
  const near = new Uint8Array(width * height);
  for (let p = 0; p < near.length; p += 1) {
    const i = 4 * p;
    near[p] = blurred[i] + blurred[i + 1] + blurred[i + 2] > 6 ? 1 : 0;
  }
  return near;
}

function updateBackground(pixels, near, nowMs) {
  if (nowMs - lastSampleMs >= SAMPLE_EVERY_MS) {
    lastSampleMs = nowMs;
    samples.push({ pixels: pixels.slice(), near });
    if (samples.length > SAMPLES) samples.shift();
  }
  const size = pixels.length;
  if (background && background.length !== size) background = null;
  if (samples.length < MIN_SAMPLES || nowMs - lastMedianMs < MEDIAN_EVERY_MS) return;
  lastMedianMs = nowMs;
  const usable = samples.filter((s) => s.pixels.length === size);
  const next = new Uint8ClampedArray(size);
  const values = new Uint8Array(usable.length);
  for (let p = 0; p < size / 4; p += 1) {
    for (let c = 0; c < 3; c += 1) {
      let count = 0;
      for (const sample of usable) if (!sample.near[p]) values[count++] = sample.pixels[4 * p + c];
      if (count === 0) break; // never seen without the person: unknown
      const sorted = values.subarray(0, count).sort();
      next[4 * p + c] = sorted[count >> 1];
      next[4 * p + 3] = 255;
    }
  }
  fillUnknown(next, size / 4 / (canvas.height || 1));
  background = next;
  obs.backgroundReady = true;
}

// Where no sample saw the background (the person stayed near those pixels), interpolate each row between
// the nearest seen pixels left and right: walls and floors are smooth along a row.
function fillUnknown(image, width) {
  const height = image.length / 4 / width;
  if (!Number.isInteger(height)) return;
  for (let y = 0; y < height; y += 1) {
    const row = 4 * y * width;
    let x = 0;
    while (x < width) {
      if (image[row + 4 * x + 3]) {
        x += 1;
        continue;
      }
      const start = x;
      while (x < width && !image[row + 4 * x + 3]) x += 1;
      const left = start > 0 ? row + 4 * (start - 1) : -1;
      const right = x < width ? row + 4 * x : -1;
      if (left < 0 && right < 0) break; // a row never seen: left unknown
      for (let k = start; k < x; k += 1) {
        const t = left < 0 ? 1 : right < 0 ? 0 : (k - start + 1) / (x - start + 1);
        for (let c = 0; c < 3; c += 1) {
          const a = left < 0 ? image[right + c] : image[left + c];
          const b = right < 0 ? image[left + c] : image[right + c];
          image[row + 4 * k + c] = Math.round(a + (b - a) * t);
        }
        image[row + 4 * k + 3] = 255;
      }
    }
  }
}

function hexColour(text) {
  const match = /^#?([0-9a-f]{6})$/i.exec(text);
  const value = match ? parseInt(match[1], 16) : 0x808080;
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

function key(frame, near, backdrop) {
  const pixels = frame.data;
  let keyed = 0;
  for (let p = 0; p < near.length; p += 1) {
    const i = 4 * p;
    let isBackdrop = !near[p];
    if (!isBackdrop && background[i + 3]) {
      const distance =
        Math.abs(pixels[i] - background[i]) +
        Math.abs(pixels[i + 1] - background[i + 1]) +
        Math.abs(pixels[i + 2] - background[i + 2]);
      isBackdrop = distance < KEY_THRESHOLD;
    }
    if (isBackdrop) {
      pixels[i] = backdrop[0];
      pixels[i + 1] = backdrop[1];
      pixels[i + 2] = backdrop[2];
      keyed += 1;
    }
  }
  obs.keyedFraction = keyed / near.length;
}

function onFrame(nowMs) {
  obs.frames += 1;
  const { videoWidth, videoHeight: height } = video;
  const width = videoWidth >> 1; // the generated half
  if (width && height) {
    if (sourceCanvas.width !== videoWidth || sourceCanvas.height !== height) {
      sourceCanvas.width = videoWidth;
      sourceCanvas.height = height;
      canvas.width = width;
      canvas.height = height;
    }
    sourceContext.drawImage(video, 0, 0, videoWidth, height);
    const frame = sourceContext.getImageData(width, 0, width, height);
    const near = nearMask(width, height);
    updateBackground(frame.data, near, nowMs);
    if (background) key(frame, near, hexColour(BACKDROPS[BACKGROUND]));
    context.putImageData(frame, 0, 0);
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
