// Minimal client: camera -> WebRTC offer over the /ws WebSocket -> generated video back, with live stats.
// Protocol: see realtime/signaling.py. No trickle ICE: the offer is sent once ICE gathering is complete.
"use strict";

const startButton = document.getElementById("start");
const statusText = document.getElementById("status");
const localVideo = document.getElementById("local");
const remoteVideo = document.getElementById("remote");
const statsText = document.getElementById("stats");
const errorText = document.getElementById("error");

let session = null; // {pc, ws, camera, timer}

function setStatus(text) {
  statusText.textContent = text;
}

function showError(text) {
  errorText.textContent = text;
  console.error(text);
}

function signalingUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
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

function fmt(value, digits = 1) {
  return value === null || value === undefined ? "n/a" : Number(value).toFixed(digits);
}

async function receivedFps(pc) {
  const report = await pc.getStats();
  let fps = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video" && s.framesPerSecond !== undefined) fps = s.framesPerSecond;
  });
  return fps;
}

function showStats(msg, browserFps) {
  const timings = Object.entries(msg.timings_ms || {})
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(", ");
  statsText.textContent =
    `server: ${fmt(msg.fps_out)} fps out (${fmt(msg.fps_in)} in), ` +
    `latency ${fmt(msg.latency_ms_mean)} ms mean, ${fmt(msg.latency_ms_last)} ms last\n` +
    `frames: ${msg.frames_in} in, ${msg.frames_out} out, ${msg.frames_dropped} dropped, ` +
    `${msg.frames_failed} failed, ${msg.frames_with_person} with a person\n` +
    `browser: ${fmt(browserFps)} fps received\n` +
    `pipeline ms: ${timings || "n/a"}`;
}

async function start() {
  errorText.textContent = "";
  setStatus("asking for the camera...");
  const camera = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
    audio: false,
  });
  localVideo.srcObject = camera;

  const pc = new RTCPeerConnection({ iceServers: [] });
  session = { pc, ws: null, camera, timer: null };
  for (const track of camera.getVideoTracks()) pc.addTrack(track, camera);
  pc.ontrack = (event) => {
    remoteVideo.srcObject = event.streams[0] || new MediaStream([event.track]);
  };
  pc.onconnectionstatechange = () => {
    setStatus(`connection ${pc.connectionState}`);
    if (pc.connectionState === "failed") showError("the WebRTC connection failed");
  };

  setStatus("gathering network candidates...");
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc);

  setStatus("connecting...");
  const ws = await openSocket(signalingUrl());
  session.ws = ws;
  const current = session;
  ws.onmessage = async (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "answer") {
      await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
      setStatus("streaming");
    } else if (msg.type === "stats") {
      showStats(msg, await receivedFps(pc));
    } else if (msg.type === "error") {
      showError(`server: ${msg.message}`);
    }
  };
  ws.onclose = () => {
    if (session === current) stop("the server closed the connection");
  };
  ws.send(JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp, sdpType: pc.localDescription.type }));
  setStatus("waiting for the answer...");
}

function stop(reason = "stopped") {
  const s = session;
  session = null;
  if (s) {
    if (s.ws && s.ws.readyState === WebSocket.OPEN) {
      s.ws.send(JSON.stringify({ type: "bye" }));
      s.ws.close();
    }
    s.pc.close();
    s.camera.getTracks().forEach((t) => t.stop());
  }
  localVideo.srcObject = null;
  remoteVideo.srcObject = null;
  startButton.textContent = "Start";
  setStatus(reason);
}

startButton.addEventListener("click", async () => {
  if (session) {
    stop();
    return;
  }
  startButton.textContent = "Stop";
  try {
    await start();
  } catch (err) {
    showError(String(err && err.message ? err.message : err));
    stop("failed");
  }
});

window.addEventListener("beforeunload", () => stop());
