// The test stamp's decoder (the layout of realtime/serving/stamp.py): the frame index in the barcode band at
// the top of a video frame. Used by the live page (app.js), and loaded from the server by the WHIP/WHEP
// harness of bench/whip_clients.py, so every page reads stamps with this one decoder.
"use strict";

const STAMP_BLOCKS = 16;
const STAMP_INDEX_BITS = STAMP_BLOCKS - 3;

// The frame index in the top band of an ImageData row strip `width` wide, or null if there is none.
function decodeStamp(pixels, width, band) {
  const bits = [];
  const y0 = Math.floor(band * 0.25);
  const y1 = Math.max(Math.floor(band * 0.75), y0 + 1);
  for (let b = 0; b < STAMP_BLOCKS; b++) {
    const x0 = (b * width) / STAMP_BLOCKS;
    const x1 = ((b + 1) * width) / STAMP_BLOCKS;
    const ix0 = Math.floor(x0 + (x1 - x0) * 0.25);
    const ix1 = Math.ceil(x0 + (x1 - x0) * 0.75);
    let sum = 0;
    let n = 0;
    for (let y = y0; y < y1; y++) {
      for (let x = ix0; x < ix1; x++) {
        const i = 4 * (y * width + x);
        sum += (pixels[i] + pixels[i + 1] + pixels[i + 2]) / 3;
        n++;
      }
    }
    bits.push(sum / n >= 128 ? 1 : 0);
  }
  let parity = 0;
  let value = 0;
  for (let i = 1; i <= STAMP_INDEX_BITS; i++) {
    parity ^= bits[i];
    value = value * 2 + bits[i];
  }
  if (bits[0] !== 1 || bits[STAMP_BLOCKS - 1] !== 0 || parity !== bits[STAMP_BLOCKS - 2]) return null;
  return value;
}

const stampCanvas = document.createElement("canvas");
const stampContext = stampCanvas.getContext("2d", { willReadFrequently: true });

function readStamp(video) {
  const width = video.videoWidth;
  const height = video.videoHeight;
  if (width < 2 * STAMP_BLOCKS || !height) return null;
  const band = Math.max(1, Math.round(width / STAMP_BLOCKS));
  stampCanvas.width = width;
  stampCanvas.height = band;
  stampContext.drawImage(video, 0, 0, width, band, 0, 0, width, band);
  return decodeStamp(stampContext.getImageData(0, 0, width, band).data, width, band);
}
