// The live page: camera -> WebRTC offer over the /ws WebSocket -> generated video back (stick figure | target),
// with live frames per second and latency, camera and target choice, a mirror toggle for the camera preview
// (on by default, like a selfie view; the stick figure and the target are never flipped) and recording (of the
// generated video, with the camera beside it by default). A video file can stand in for the camera (no webcam,
// or a remote machine): it plays, looped, through a hidden <video> and is sent as the camera track.
// While streaming, a button per action of the target (/targets "actions") makes it perform that action.
// Protocol: see realtime/serving/signaling.py. No trickle ICE: the offer is sent once ICE gathering is complete.
// Test mode (server started with --test-stamp): frame-index barcodes (realtime/serving/stamp.py) are read from the
// camera and the generated video as they are shown; window.dance.stamps keeps them for measurements.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  start: $("start"),
  record: $("record"),
  status: $("status"),
  targets: $("targets"),
  cameras: $("cameras"),
  sourceFile: $("source-file"),
  sourceClear: $("source-clear"),
  mirror: $("mirror"),
  recordCamera: $("record-camera"),
  videos: $("videos"),
  local: $("local"),
  stick: $("stick"),
  target: $("target"),
  headline: $("headline"),
  stats: $("stats"),
  error: $("error"),
  recording: $("recording"),
  garments: $("garments"),
  actions: $("actions"),
  outputs: $("outputs"),
};

// -- this session elsewhere: the OBS page and WHEP --------------------------------------------------------

// Links to this session's target on other screens: the OBS page (a Browser Source; plain, green or the
// target's own background) and the WHEP URL for players (the token goes in their bearer-token field).
function showOutputs(sessionId) {
  if (sessionId === undefined || sessionId === null) return;
  const obs = document.createElement("a");
  obs.href = withToken("obs", { session: sessionId, background: "green" });
  obs.target = "_blank";
  obs.textContent = "OBS page";
  obs.title = "add this URL as an OBS Browser Source (background: green for a chroma key, plate, or target)";
  const whep = document.createElement("code");
  whep.textContent = `${location.origin}/whep/${sessionId}`;
  ui.outputs.replaceChildren(
    `session ${sessionId}: `, obs, " \u00b7 WHEP playback: ", whep,
    TOKEN ? " (bearer token: the one in this page's URL)" : "",
  );
}

const MAX_STAMPS = 20000; // per video: about 14 minutes at 24 fps
const ICE_GATHERING_TIMEOUT_MS = 5000;

// State and measurements, also read by the browser test and measurement (bench/browser.py).
const dance = {
  config: null, // GET /targets
  session: null, // {pc, ws, camera, sender, remote, recorder}
  status: "stopped",
  errors: [],
  source: null, // "camera", or the name of the video file played as the camera
  lastStats: null,
  remoteFrames: 0, // generated frames shown
  recordings: [], // {size, type, url, name}
  // [frame index, shown at (ms), captured at (ms) or null] for the camera preview; [frame index, shown at (ms),
  // received at (ms: last packet of the frame) or null] for the generated video. All on performance.now().
  stamps: { local: [], remote: [] },
  glassToGlassMs: [], // [shown at (ms), latency (ms)] over the last seconds (test mode)
  garmentColours: {}, // garment -> "#rrggbb" asked for (sent again when a session starts)
  garmentApplied: {}, // garment -> "#rrggbb" or null, as the server confirmed
  actionsPlayed: [], // {label, seconds} as the server confirmed
};
window.dance = dance;

function setStatus(text) {
  dance.status = text;
  ui.status.textContent = text;
}

function showError(text) {
  dance.errors.push(text);
  ui.error.textContent = text;
  console.error(text);
}

function fmt(value, digits = 1) {
  return value === null || value === undefined || Number.isNaN(value) ? "n/a" : Number(value).toFixed(digits);
}

// The server's token (server.py prints the page's URL with ?token=... when it has one): passed on to /ws,
// /targets and the OBS page's link; never shown in the page.
const TOKEN = new URLSearchParams(location.search).get("token");

function withToken(path, params = {}) {
  const query = new URLSearchParams(params);
  if (TOKEN) query.set("token", TOKEN);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

function signalingUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/${withToken("ws")}`;
}

// -- test stamp: decodeStamp and readStamp are stamp.js's (loaded before this file) ----------------------

// -- per-frame watching: frame counts and (test mode) stamps ----------------------------------------------

const localCaptureMs = new Map(); // frame index -> when the camera captured it (ms, performance.now() clock)

function watchFrames(video, onFrame) {
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return;
  const stream = video.srcObject;
  const step = (now, metadata) => {
    if (video.srcObject !== stream || !stream) return;
    onFrame(now, metadata);
    video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
}

function onLocalFrame(now, metadata) {
  if (!dance.config || !dance.config.test_stamp) return;
  const index = readStamp(ui.local);
  if (index === null) return;
  const shownMs = metadata.expectedDisplayTime;
  const capturedMs = metadata.captureTime === undefined ? null : metadata.captureTime;
  if (dance.stamps.local.length < MAX_STAMPS) dance.stamps.local.push([index, shownMs, capturedMs]);
  localCaptureMs.set(index, capturedMs === null ? shownMs : capturedMs);
}

function onRemoteFrame(now, metadata) {
  dance.remoteFrames++;
  if (!dance.config || !dance.config.test_stamp) return;
  const index = readStamp(ui.target);
  if (index === null) return;
  const shownMs = metadata.expectedDisplayTime;
  const receivedMs = metadata.receiveTime === undefined ? null : metadata.receiveTime;
  if (dance.stamps.remote.length < MAX_STAMPS) dance.stamps.remote.push([index, shownMs, receivedMs]);
  const capturedMs = localCaptureMs.get(index);
  if (capturedMs !== undefined) {
    dance.glassToGlassMs.push([shownMs, shownMs - capturedMs]);
    while (dance.glassToGlassMs.length && dance.glassToGlassMs[0][0] < shownMs - 2000) dance.glassToGlassMs.shift();
  }
}

// -- targets and cameras ----------------------------------------------------------------------------------

async function loadTargets() {
  const response = await fetch(withToken("targets"), { cache: "no-store" });
  if (response.status === 401 || response.status === 403) {
    throw new Error(`${(await response.text()).trim()} (HTTP ${response.status})`);
  }
  if (!response.ok) throw new Error(`cannot list the targets: HTTP ${response.status}`);
  dance.config = await response.json();
  ui.targets.replaceChildren(
    ...dance.config.targets.map((t) => {
      const option = new Option(t.canvas_size ? `${t.name} (${t.canvas_size.join("x")})` : t.name, t.name);
      option.selected = t.name === dance.config.default;
      return option;
    }),
  );
  showGarments();
  showActions();
}

// -- actions (the target performs one for ACTION_SECONDS, then follows the camera again) --------------------

const ACTION_SECONDS = 4;

function showActions() {
  const actions = (chosenTarget() || {}).actions || [];
  const streaming = Boolean(dance.session && dance.session.answered);
  ui.actions.replaceChildren(
    ...actions.map((label) => {
      const button = Object.assign(document.createElement("button"), { type: "button", textContent: label });
      button.id = `action-${label}`;
      button.disabled = !streaming;
      button.title = `the target performs "${label.replace("_", " ")}" for ${ACTION_SECONDS} s`;
      button.addEventListener("click", () => sendAction(label));
      return button;
    }),
  );
  ui.actions.hidden = actions.length === 0;
}

function enableActions(enabled) {
  for (const button of ui.actions.querySelectorAll("button")) button.disabled = !enabled;
}

function sendAction(label) {
  const ws = dance.session && dance.session.ws;
  if (ws && ws.readyState === WebSocket.OPEN && dance.session.answered) {
    ws.send(JSON.stringify({ type: "action", label, seconds: ACTION_SECONDS }));
  }
}

// -- garment colours (targets with a reference appearance) ------------------------------------------------

function chosenTarget() {
  if (!dance.config) return null;
  return dance.config.targets.find((t) => t.name === ui.targets.value) || null;
}

function showGarments() {
  const garments = (chosenTarget() || {}).garments || [];
  dance.garmentColours = {};
  ui.garments.replaceChildren(
    ...garments.flatMap((garment) => {
      const input = Object.assign(document.createElement("input"), { type: "color", value: "#808080" });
      input.id = `colour-${garment}`;
      input.addEventListener("change", () => sendGarmentColour(garment, input.value));
      const label = document.createElement("label");
      label.append(`${garment} colour `, input);
      const reset = Object.assign(document.createElement("button"), { type: "button", textContent: "reset" });
      reset.id = `colour-${garment}-reset`;
      reset.addEventListener("click", () => sendGarmentColour(garment, null));
      return [label, reset];
    }),
  );
  ui.garments.hidden = garments.length === 0;
}

function sendGarmentColour(garment, colour) {
  if (colour === null) delete dance.garmentColours[garment];
  else dance.garmentColours[garment] = colour;
  const ws = dance.session && dance.session.ws;
  if (ws && ws.readyState === WebSocket.OPEN && dance.session.answered) {
    ws.send(JSON.stringify({ type: "garment_colour", garment, colour }));
  }
}

async function listCameras() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const cameras = devices.filter((d) => d.kind === "videoinput");
  const chosen = ui.cameras.value;
  const options = [new Option("default camera", "")];
  cameras.forEach((d, i) => options.push(new Option(d.label || `camera ${i + 1}`, d.deviceId)));
  ui.cameras.replaceChildren(...options);
  if ([...ui.cameras.options].some((o) => o.value === chosen)) ui.cameras.value = chosen;
}

// The camera stream: the chosen webcam, or the chosen video file played (looped, muted) and captured.
async function openCamera() {
  const file = ui.sourceFile.files && ui.sourceFile.files[0];
  if (!file) return navigator.mediaDevices.getUserMedia(cameraConstraints());
  const player = document.createElement("video");
  player.muted = true;
  player.loop = true;
  player.playsInline = true;
  player.src = URL.createObjectURL(file);
  await new Promise((resolve, reject) => {
    player.onloadeddata = resolve;
    player.onerror = () => reject(new Error(`cannot play ${file.name} in this browser (try an .mp4 or .webm file)`));
  });
  await player.play();
  const stream = player.captureStream ? player.captureStream() : player.mozCaptureStream();
  if (!stream.getVideoTracks().length) throw new Error(`${file.name} has no video track`);
  // Stopping the stream's tracks (stop(), a camera switch) also stops the player and frees the file.
  const track = stream.getVideoTracks()[0];
  const originalStop = track.stop.bind(track);
  track.stop = () => {
    originalStop();
    player.pause();
    URL.revokeObjectURL(player.src);
  };
  dance.source = file.name;
  return stream;
}

// About 480 rows, scaled at the camera's own aspect ratio. (An ideal width as well made Chromium crop a
// portrait camera to it: a 480x884 one came as 480x480, without the head and the feet.)
function cameraConstraints() {
  const video = { height: { ideal: 480 }, frameRate: { ideal: 30 } };
  if (ui.cameras.value) video.deviceId = { exact: ui.cameras.value };
  return { video, audio: false };
}

// -- session -----------------------------------------------------------------------------------------------

// Camera frames beyond what the server can generate are dropped there after being encoded here and decoded
// there: cap the camera at the server's rate, so those cycles go to the pipeline instead. The track's
// frameRate constraint makes the camera (or the browser's frame-rate adapter) deliver fewer, wider-spaced
// frames; the sender's maxFramerate backs it up where the constraint is not honoured. (maxFramerate alone
// lets the encoder drop frames of a faster camera, so that at 24 -> 15 fps two of every three frames come
// 42 ms after the previous one, and such a frame waits for the server's pose thread, still busy with the
// previous one: Chromium's adapter sends 82, 82, 41 ms instead, and the server's latency drops.)
async function capSendRate(sender, maxFps) {
  if (!maxFps) return;
  const track = sender.track;
  if (track && track.applyConstraints) {
    try {
      await track.applyConstraints({ ...track.getConstraints(), frameRate: { ideal: maxFps, max: maxFps } });
    } catch (error) {
      console.warn("cannot cap the camera's frame rate:", error);
    }
  }
  if (!sender.getParameters) return;
  const parameters = sender.getParameters();
  if (!parameters.encodings || !parameters.encodings.length) parameters.encodings = [{}];
  for (const encoding of parameters.encodings) encoding.maxFramerate = maxFps;
  try {
    await sender.setParameters(parameters);
  } catch (error) {
    console.warn("cannot cap the camera's send rate:", error);
  }
}

function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ICE_GATHERING_TIMEOUT_MS); // send what was gathered so far
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

function openSocket(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
  });
}

const CLOSE_REASONS = {
  1001: "the server is shutting down",
  1008: "the server closed the session (no offer in time)",
  1009: "a message was too large",
  1013: "the server is full; try again later",
};

async function start() {
  ui.error.textContent = "";
  setStatus("asking for the camera...");
  dance.source = "camera";
  const camera = await openCamera();
  const session = { pc: null, ws: null, camera, sender: null, remote: null, recorder: null };
  dance.session = session;
  ui.local.srcObject = camera;
  watchFrames(ui.local, onLocalFrame);
  listCameras().catch((err) => console.warn("cannot list cameras", err));

  setStatus("connecting...");
  const ws = await openSocket(signalingUrl());
  session.ws = ws;
  ws.onmessage = (event) => onMessage(session, JSON.parse(event.data));
  ws.onclose = (event) => {
    if (dance.session === session) stop(CLOSE_REASONS[event.code] || "the server closed the connection");
  };
  if (dance.session !== session) return; // stopped meanwhile (server full, user)

  const pc = new RTCPeerConnection({ iceServers: [] });
  session.pc = pc;
  session.sender = pc.addTrack(camera.getVideoTracks()[0], camera);
  await capSendRate(session.sender, dance.config && dance.config.max_input_fps);
  pc.ontrack = (event) => {
    // The output keeps the camera's timestamps while the server's processing time varies from frame to
    // frame; left alone, Chromium's jitter buffer smooths that out with ~100 ms of extra delay. Prefer latency.
    if ("jitterBufferTarget" in event.receiver) event.receiver.jitterBufferTarget = 0;
    if ("playoutDelayHint" in event.receiver) event.receiver.playoutDelayHint = 0;
    const remote = event.streams[0] || new MediaStream([event.track]);
    session.remote = remote;
    for (const video of [ui.stick, ui.target]) video.srcObject = remote;
    watchFrames(ui.target, onRemoteFrame);
    ui.record.disabled = false;
  };
  pc.onconnectionstatechange = () => {
    if (dance.session !== session) return;
    if (pc.connectionState === "connected") setStatus("streaming");
    if (pc.connectionState === "failed") {
      showError("the WebRTC connection failed (no network path between this browser and the server)");
      stop("failed");
    }
  };
  setStatus("gathering network candidates...");
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc);
  if (dance.session !== session) return;
  const offer = { type: "offer", sdp: pc.localDescription.sdp, sdpType: pc.localDescription.type };
  offer.target = ui.targets.value || undefined;
  ws.send(JSON.stringify(offer));
  setStatus("waiting for the answer...");
}

async function onMessage(session, msg) {
  if (dance.session !== session) return;
  if (msg.type === "answer") {
    try {
      await session.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
    } catch (err) {
      showError(`cannot use the server's answer: ${err.message}`);
      stop("failed");
      return;
    }
    setStatus(`connecting the video (target ${msg.target})...`);
    session.answered = true;
    session.id = msg.session;
    showOutputs(msg.session);
    for (const [garment, colour] of Object.entries(dance.garmentColours)) sendGarmentColour(garment, colour);
    enableActions(true);
  } else if (msg.type === "stats") {
    const browser = await browserStats(session.pc);
    if (dance.session !== session) return; // stopped while the browser's stats were read
    dance.lastStats = msg;
    showStats(msg, browser);
  } else if (msg.type === "input_rate") {
    // The server generates about this many frames per second for us: send no more (see InputRateControl).
    if (session.sender && Number.isFinite(msg.max_fps) && msg.max_fps > 0) {
      await capSendRate(session.sender, msg.max_fps);
    }
  } else if (msg.type === "garment_colour") {
    dance.garmentApplied[msg.garment] = msg.colour;
  } else if (msg.type === "action") {
    dance.actionsPlayed.push({ label: msg.label, seconds: msg.seconds });
  } else if (msg.type === "error") {
    showError(`server: ${msg.message}`);
    if (msg.code === "server_full" || msg.code === "unknown_target" || msg.code === "peer_failed") {
      stop(msg.code === "server_full" ? "the server is full" : "failed");
    }
  }
}

let previousJitter = null;

async function browserStats(pc) {
  const out = { fps: null, jitterBufferMs: null, roundTripMs: null };
  if (!pc) return out;
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      if (s.framesPerSecond !== undefined) out.fps = s.framesPerSecond;
      if (s.jitterBufferDelay !== undefined && s.jitterBufferEmittedCount) {
        const now = { delay: s.jitterBufferDelay, count: s.jitterBufferEmittedCount };
        if (previousJitter && now.count > previousJitter.count) {
          out.jitterBufferMs = (1000 * (now.delay - previousJitter.delay)) / (now.count - previousJitter.count);
        }
        previousJitter = now;
      }
    }
    if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) {
      out.roundTripMs = 1000 * s.currentRoundTripTime;
    }
  });
  return out;
}

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function showStats(msg, browser) {
  const glass = median(dance.glassToGlassMs.map((g) => g[1]));
  const fps = browser.fps !== null ? browser.fps : msg.fps_out;
  const latency = glass !== null ? `glass-to-glass ${fmt(glass, 0)} ms` : `server latency ${fmt(msg.latency_ms_mean, 0)} ms`;
  ui.headline.textContent = `${fmt(fps)} fps · ${latency}`;
  const timings = Object.entries(msg.timings_ms || {})
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(", ");
  ui.stats.textContent =
    `server: ${fmt(msg.fps_out)} fps out (${fmt(msg.fps_in)} in), ` +
    `latency ${fmt(msg.latency_ms_mean)} ms mean, ${fmt(msg.latency_ms_last)} ms last\n` +
    `frames: ${msg.frames_in} in, ${msg.frames_out} out, ${msg.frames_dropped} dropped, ` +
    `${msg.frames_failed} failed, ${msg.frames_with_person} with a person\n` +
    `browser: ${fmt(browser.fps)} fps received, jitter buffer ${fmt(browser.jitterBufferMs, 0)} ms, ` +
    `round trip ${fmt(browser.roundTripMs, 0)} ms` +
    (glass !== null ? `, glass-to-glass ${fmt(glass, 0)} ms (median, last 2 s)` : "") +
    `\npipeline ms: ${timings || "n/a"}`;
}

// The figures shown belong to a running session: a stopped one shows none (not its last, frozen values).
function clearStats() {
  dance.lastStats = null;
  dance.glassToGlassMs = [];
  ui.headline.textContent = "";
  ui.stats.textContent = "";
}

function stop(reason = "stopped") {
  const session = dance.session;
  dance.session = null;
  if (session) {
    stopRecording(session);
    if (session.ws && session.ws.readyState === WebSocket.OPEN) {
      session.ws.send(JSON.stringify({ type: "bye" }));
      session.ws.close();
    }
    if (session.pc) session.pc.close();
    session.camera.getTracks().forEach((t) => t.stop());
  }
  for (const video of [ui.local, ui.stick, ui.target]) video.srcObject = null;
  ui.outputs.replaceChildren();
  localCaptureMs.clear();
  previousJitter = null;
  clearStats();
  ui.start.textContent = "Start";
  ui.record.disabled = true;
  ui.record.textContent = "Record";
  enableActions(false);
  setStatus(reason);
}

async function restart() {
  stop("restarting...");
  await onStartClick();
}

// -- camera switching, mirror, recording ------------------------------------------------------------------

async function switchCamera() {
  const session = dance.session;
  ui.sourceClear.hidden = !(ui.sourceFile.files && ui.sourceFile.files.length);
  if (!session || !session.sender) return;
  const camera = await openCamera();
  if (dance.session !== session) {
    camera.getTracks().forEach((t) => t.stop());
    return;
  }
  await session.sender.replaceTrack(camera.getVideoTracks()[0]); // no renegotiation needed
  session.camera.getTracks().forEach((t) => t.stop());
  session.camera = camera;
  ui.local.srcObject = camera;
  watchFrames(ui.local, onLocalFrame);
}

function applyMirror() {
  ui.videos.classList.toggle("mirrored", ui.mirror.checked);
}

// The stick figure and the target are shown at the target's canvas aspect (a portrait target portrait, never
// squashed into a square): from the target list's canvas size before the video arrives, then from the video.
function setHalfAspect(width, height) {
  if (width > 0 && height > 0) ui.videos.style.setProperty("--half-aspect", String(width / height));
}

function fitHalvesToTarget() {
  const chosen = chosenTarget();
  if (chosen && chosen.canvas_size) setHalfAspect(chosen.canvas_size[0], chosen.canvas_size[1]);
}

function fitHalves() {
  const { videoWidth: w, videoHeight: h } = ui.target;
  if (w && h) setHalfAspect(w / 2, h);
}

// The camera beside the generated video (stick figure | target), drawn into a canvas on each generated
// frame, as the page shows them (the camera mirrored when the preview is). Returns the canvas's stream and a
// function that stops the drawing.
function cameraAndGenerated() {
  const generated = ui.target;
  const camera = ui.local;
  const height = generated.videoHeight || 256;
  const generatedWidth = generated.videoWidth || 2 * height;
  const cameraWidth = camera.videoWidth && camera.videoHeight ? (camera.videoWidth * height) / camera.videoHeight : 0;
  const canvas = document.createElement("canvas");
  canvas.width = 2 * Math.ceil((cameraWidth + generatedWidth) / 2); // even sizes for the video encoders
  canvas.height = 2 * Math.ceil(height / 2);
  const context = canvas.getContext("2d");
  let drawing = true;
  const draw = () => {
    if (!drawing) return;
    if (cameraWidth && camera.videoWidth) {
      context.save();
      if (ui.mirror.checked) {
        context.translate(cameraWidth, 0);
        context.scale(-1, 1);
      }
      context.drawImage(camera, 0, 0, cameraWidth, height);
      context.restore();
    }
    if (generated.videoWidth) context.drawImage(generated, cameraWidth, 0, generatedWidth, height);
  };
  let timer = null;
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    const step = () => {
      draw();
      if (drawing) generated.requestVideoFrameCallback(step);
    };
    generated.requestVideoFrameCallback(step);
  } else {
    timer = setInterval(draw, 1000 / 30);
  }
  draw();
  const stream = canvas.captureStream();
  const stopDrawing = () => {
    drawing = false;
    if (timer !== null) clearInterval(timer);
    stream.getTracks().forEach((t) => t.stop());
  };
  return { stream, stopDrawing };
}

function startRecording(session) {
  const types = ["video/webm;codecs=vp9", "video/webm;codecs=vp8", "video/webm", "video/mp4"];
  const mimeType = types.find((t) => MediaRecorder.isTypeSupported(t));
  const withCamera = ui.recordCamera.checked;
  const composite = withCamera ? cameraAndGenerated() : null;
  const source = composite ? composite.stream : session.remote;
  const recorder = new MediaRecorder(source, mimeType ? { mimeType } : undefined);
  const chunks = [];
  const startedMs = performance.now();
  recorder.ondataavailable = (event) => {
    if (event.data.size) chunks.push(event.data);
  };
  recorder.onstop = () => {
    if (composite) composite.stopDrawing();
    const type = recorder.mimeType || "video/webm";
    const blob = new Blob(chunks, { type });
    const name = `dance-${new Date().toISOString().replace(/[:.]/g, "-")}.${type.includes("mp4") ? "mp4" : "webm"}`;
    const url = URL.createObjectURL(blob);
    const seconds = (performance.now() - startedMs) / 1000;
    dance.recordings.push({ size: blob.size, type, url, name, withCamera });
    const link = document.createElement("a");
    link.href = url;
    link.download = name;
    const what = withCamera ? "camera, stick figure and target" : "stick figure and target";
    link.textContent = `download the recording (${what}, ${fmt(seconds)} s, ${fmt(blob.size / 1024, 0)} KiB)`;
    ui.recording.replaceChildren(link);
  };
  recorder.start(1000);
  session.recorder = recorder;
  ui.record.textContent = "Stop recording";
}

function stopRecording(session) {
  if (session.recorder && session.recorder.state !== "inactive") session.recorder.stop();
  session.recorder = null;
  ui.record.textContent = "Record";
}

// -- wiring ------------------------------------------------------------------------------------------------

async function onStartClick() {
  if (dance.session) {
    stop();
    return;
  }
  ui.start.textContent = "Stop";
  try {
    await start();
  } catch (err) {
    showError(String(err && err.message ? err.message : err));
    stop("failed");
  }
}

ui.start.addEventListener("click", onStartClick);
ui.record.addEventListener("click", () => {
  const session = dance.session;
  if (!session || !session.remote) return;
  if (session.recorder) stopRecording(session);
  else startRecording(session);
});
ui.mirror.addEventListener("change", applyMirror);
ui.sourceFile.addEventListener("change", () => switchCamera().catch((err) => showError(`video file: ${err.message}`)));
ui.sourceClear.addEventListener("click", () => {
  ui.sourceFile.value = "";
  switchCamera().catch((err) => showError(`camera: ${err.message}`));
});
ui.cameras.addEventListener("change", () => switchCamera().catch((err) => showError(`camera: ${err.message}`)));
ui.targets.addEventListener("change", () => {
  fitHalvesToTarget();
  showGarments();
  showActions();
  if (dance.session) restart();
});
ui.target.addEventListener("resize", fitHalves);
ui.target.addEventListener("loadedmetadata", fitHalves);
navigator.mediaDevices.addEventListener("devicechange", () => listCameras().catch(() => {}));
window.addEventListener("beforeunload", () => stop());

applyMirror();
loadTargets()
  .then(fitHalvesToTarget)
  .catch((err) => showError(err.message));
listCameras().catch(() => {});
