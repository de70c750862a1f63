// The esbuild entry of bench/whip_clients.py: the two third-party clients, unchanged, as page globals.
// Bundled at run time to build/clients.bundle.js (node_modules and build/ are not committed); versions pinned in
// package.json and package-lock.json.
import { WHIPClient } from "@eyevinn/whip-web-client";
import { WebRTCPlayer } from "@eyevinn/webrtc-player";

window.WHIPClient = WHIPClient;
window.WebRTCPlayer = WebRTCPlayer;
