// The harness of bench/whip_clients.py: real third-party WHIP/WHEP clients against server.py, from another origin.
//
// role=publish: getUserMedia's camera (Chromium's fake camera playing a stamped y4m) is published with npm's
//   @eyevinn/whip-web-client (WHIPClient, noTrickleIce: the offer is sent once with its candidates; the token as
//   its authkey, sent as "Authorization: Bearer TOKEN"); the session id is read from the WHIP Location
//   (/whip/sessions/ID), and /whep/ID is played with @eyevinn/webrtc-player (WebRTCPlayer, adapter "whep")
//   in the second <video>.
// role=view: only the player, of /whep/SESSION.
// trickle=auto: the WHIP client's own default instead of noTrickleIce (see publish()).
// The player's WHEP adapter sends its authKey as the whole Authorization header value, so it is given
// "Bearer TOKEN".
//
// Every frame shown by either <video> is watched with requestVideoFrameCallback; its test-stamp barcode (the layout
// of realtime/serving/stamp.py, the reader of realtime/serving/web/app.js) is read, and
// [index, shown at (ms), captured / received at (ms) or null] kept in window.harness.stamps (local: the camera
// preview; remote: the played video), on this page's performance.now() clock (performance.timeOrigin is given
// so that the driver can put two pages on one clock). bench.browser.glass_to_glass() turns them into latency.
"use strict";

const params = new URLSearchParams(location.search);
const WHIP_TIMEOUT_MS = 30000; // from ingest() to the WHIP answer (the client waits 2 s for ICE gathering first)
const MAX_RECORDS = 20000; // per list: about 22 minutes at 15 fps

const harness = {
  role: params.get("role") || "publish",
  server: params.get("server"),
  status: "starting",
  errors: [],
  sessionId: null,
  whipResource: null,
  timeOrigin: performance.timeOrigin,
  // [index, shown (ms), capture time (ms) or null] (local); [index, shown (ms), receive time (ms) or null] (remote)
  stamps: { local: [], remote: [] },
  // shown time (ms) of every frame the played video showed, stamped or not
  remoteShownMs: [],
  localFrames: 0,
  remoteFrames: 0,
  client: null,
  player: null,
};
window.harness = harness;

function setStatus(text) {
  harness.status = text;
  document.getElementById("status").textContent = text;
}

function fail(text) {
  harness.errors.push(text);
  setStatus("error");
  console.error(text);
}

// -- test stamp: decodeStamp and readStamp come from the server's stamp.js (loaded by harness.html) ----------

// -- per-frame watching ----------------------------------------------------------------------------------------------

function watchFrames(video, onFrame) {
  const step = (now, metadata) => {
    onFrame(metadata);
    video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
}

function onLocalFrame(metadata) {
  harness.localFrames++;
  const index = readStamp(local);
  if (index === null || harness.stamps.local.length >= MAX_RECORDS) return;
  const capturedMs = metadata.captureTime === undefined ? null : metadata.captureTime;
  harness.stamps.local.push([index, metadata.expectedDisplayTime, capturedMs]);
}

function onRemoteFrame(metadata) {
  harness.remoteFrames++;
  if (harness.remoteShownMs.length < MAX_RECORDS) harness.remoteShownMs.push(metadata.expectedDisplayTime);
  const index = readStamp(played);
  if (index === null || harness.stamps.remote.length >= MAX_RECORDS) return;
  const receivedMs = metadata.receiveTime === undefined ? null : metadata.receiveTime;
  harness.stamps.remote.push([index, metadata.expectedDisplayTime, receivedMs]);
}

const local = document.getElementById("local");
const played = document.getElementById("played");
watchFrames(local, onLocalFrame);
watchFrames(played, onRemoteFrame);

// -- for the driver --------------------------------------------------------------------------------------------------

// Forget the records so far (the measurement starts now); returns this page's performance.now().
harness.reset = () => {
  harness.stamps.local.length = 0;
  harness.stamps.remote.length = 0;
  harness.remoteShownMs.length = 0;
  return performance.now();
};

// Date.now() - performance.now() (ms), averaged over 50 ms of readings: where this page's clock starts on the
// system's wall clock, to put two pages on one clock (Date.now()'s whole milliseconds average out).
harness.wallClockStartMs = () => {
  let sum = 0;
  let n = 0;
  const until = performance.now() + 50;
  while (performance.now() < until) {
    sum += Date.now() - performance.now();
    n++;
  }
  return sum / n;
};

// The played video's current frame: its size, and the mean and standard deviation of its luma (0-255) below the
// stamp band (a black or frozen-blank frame has a mean near 0 and no spread).
harness.snapshot = () => {
  const width = played.videoWidth;
  const height = played.videoHeight;
  if (!width || !height) return { width, height, mean: null, std: null };
  const band = Math.max(1, Math.round(width / STAMP_BLOCKS));
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(played, 0, 0, width, height);
  const pixels = context.getImageData(0, band, width, height - band).data;
  let sum = 0;
  let squares = 0;
  const n = pixels.length / 4;
  for (let i = 0; i < pixels.length; i += 4) {
    const luma = 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
    sum += luma;
    squares += luma * luma;
  }
  const mean = sum / n;
  return { width, height, mean, std: Math.sqrt(Math.max(0, squares / n - mean * mean)) };
};

// End the session the way a user's Stop does: the player's DELETE of its WHEP resource, then the WHIP client's
// DELETE of the session (both clients' own calls).
harness.stop = async () => {
  if (harness.player) await harness.player.unload();
  if (harness.client) await harness.client.destroy();
  setStatus("stopped");
};

// -- the clients -----------------------------------------------------------------------------------------------------

function authKey() {
  const token = params.get("token");
  return token ? token : undefined;
}

function play(sessionId) {
  const view = params.get("view") || "target";
  const player = new WebRTCPlayer({ video: played, type: "whep", iceServers: [], debug: true });
  harness.player = player;
  for (const event of ["no-media", "peer-connection-failed", "initial-connection-failed", "connect-error"]) {
    player.on(event, () => fail(`webrtc-player: ${event}`));
  }
  const url = new URL(`/whep/${sessionId}?view=${encodeURIComponent(view)}`, harness.server);
  const token = authKey();
  return player.load(url, token ? `Bearer ${token}` : undefined);
}

async function publish() {
  setStatus("camera");
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  local.srcObject = stream;
  const target = params.get("target");
  const endpoint = new URL(target ? `/whip/${encodeURIComponent(target)}` : "/whip", harness.server);
  // noTrickleIce: the offer waits for ICE gathering (the server takes no trickle ICE). trickle=auto leaves the
  // client's default: it asks the endpoint (OPTIONS) and trickles when Access-Control-Allow-Methods has PATCH.
  const opts = { authkey: authKey(), iceServers: [], debug: true };
  if (params.get("trickle") !== "auto") opts.noTrickleIce = true;
  const client = new WHIPClient({ endpoint: endpoint.toString(), opts });
  harness.client = client;
  setStatus("publishing");
  await client.ingest(stream);
  // the client only logs a refused offer (its console shows the status and the server's line) and its
  // getResourceUrl() then never settles
  const resource = await Promise.race([
    client.getResourceUrl(),
    new Promise((resolve, reject) => {
      const late = () => reject(new Error(`no WHIP Location within ${WHIP_TIMEOUT_MS} ms (see the console)`));
      setTimeout(late, WHIP_TIMEOUT_MS);
    }),
  ]);
  harness.whipResource = resource;
  const match = new URL(resource).pathname.match(/^\/whip\/sessions\/(\d+)$/);
  if (!match) throw new Error(`the WHIP Location ${resource} is not /whip/sessions/ID`);
  harness.sessionId = Number(match[1]);
  setStatus("playing");
  await play(harness.sessionId);
}

async function main() {
  if (!harness.server) throw new Error("no server=ORIGIN in the page's query");
  if (harness.role === "publish") {
    await publish();
  } else if (harness.role === "view") {
    harness.sessionId = Number(params.get("session"));
    setStatus("playing");
    await play(harness.sessionId);
  } else {
    throw new Error(`unknown role ${harness.role}`);
  }
}

main().catch((error) => fail(`${error.name}: ${error.message}`));
