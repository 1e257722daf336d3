// Reads the synthetic camera's stamp from painted pixels (see src/camera/stamp.rs for the
// layout): 21 bytes in black/white cells at the top of the frame, CRC-16/CCITT-FALSE checked.
'use strict';

const PieStamp = (() => {
  const BYTES = 21, BITS = BYTES * 8;
  const cellSize = (width) => (width >= 960 ? 16 : 8);

  function crc16(bytes, n) {
    let crc = 0xffff;
    for (let i = 0; i < n; i++) {
      crc ^= bytes[i] << 8;
      for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
  }

  // rgba: Uint8ClampedArray of an ImageData covering the top band; width: frame width in px.
  function read(rgba, width) {
    const c = cellSize(width), perRow = Math.floor(width / c);
    const bytes = new Uint8Array(BYTES);
    for (let bit = 0; bit < BITS; bit++) {
      const cy = Math.floor(bit / perRow) * c, cx = (bit % perRow) * c;
      let sum = 0, n = 0;
      for (let y = cy + c / 4; y < cy + (3 * c) / 4; y++) {
        for (let x = cx + c / 4; x < cx + (3 * c) / 4; x++) {
          const i = (y * width + x) * 4;
          if (i + 2 >= rgba.length) return null;
          sum += (rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3;
          n++;
        }
      }
      if (sum / n >= 128) bytes[bit >> 3] |= 0x80 >> (bit & 7);
    }
    if (bytes[0] >> 4 !== 1) return null;
    if (crc16(bytes, 19) !== ((bytes[19] << 8) | bytes[20])) return null;
    const u16 = (i) => (bytes[i] << 8) | bytes[i + 1];
    let ts = 0;
    for (let i = 5; i < 11; i++) ts = ts * 256 + bytes[i];
    return {
      eye: bytes[0] & 0x0f,
      sequence: ((bytes[1] << 24) >>> 0) + (bytes[2] << 16) + (bytes[3] << 8) + bytes[4],
      captureUs: ts,
      crop: [u16(11), u16(13), u16(15), u16(17)],
    };
  }

  // Band height in pixels for a frame `width` wide.
  function bandHeight(width) {
    const c = cellSize(width);
    return Math.ceil(BITS / Math.floor(width / c)) * c;
  }

  // Read the stamp straight from a canvas 2D context.
  function fromCanvas(ctx, width) {
    const h = bandHeight(width);
    return read(ctx.getImageData(0, 0, width, h).data, width);
  }

  return { read, fromCanvas, bandHeight };
})();
