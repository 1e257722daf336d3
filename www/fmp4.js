// A fragmented-MP4 muxer for Media Source Extensions: one H.264 access unit (Annex B, as the
// daemon sends it) in, one `moof`+`mdat` fragment out, with an init segment (`ftyp`+`moov`,
// `avc1`/`avcC` from the SPS and PPS) whenever the parameter sets appear or change. One video
// track, baseline decoding order (no B-frames: decode time = presentation time), timescale
// 1 µs so a frame's media time is its capture time minus the first frame's. Boxes as in
// ISO/IEC 14496-12 (ISO BMFF) and 14496-15 (AVC file format); the layout follows what
// JMuxer and hls.js's mp4-generator write for MSE, without their generality. No build step:
// a classic script in the page (`PieFmp4`), and `require`-able by the node unit test.
'use strict';

const PieFmp4 = (() => {
  const TIMESCALE = 1000000;
  const TRACK = 1;

  // ---- Annex B ----------------------------------------------------------------------------

  // The NAL units of an Annex-B byte stream, without start codes (subarrays, no copies).
  function nalUnits(b) {
    const out = [];
    let start = -1;
    let i = 0;
    while (i + 2 < b.length) {
      if (b[i] === 0 && b[i + 1] === 0 && b[i + 2] === 1) {
        if (start >= 0) out.push(trimZeros(b, start, i));
        i += 3;
        start = i;
      } else {
        i++;
      }
    }
    if (start >= 0 && start < b.length) out.push(trimZeros(b, start, b.length));
    return out.filter((n) => n.length > 0);
  }

  // A zero before a start code is the first byte of a 4-byte start code (or trailing_zero_8bits).
  function trimZeros(b, from, to) {
    while (to > from && b[to - 1] === 0) to--;
    return b.subarray(from, to);
  }

  const hex2 = (v) => v.toString(16).padStart(2, '0').toUpperCase();
  // RFC 6381 codec string from an SPS: avc1.PPCCLL (profile, constraint flags, level).
  const codecOf = (sps) => 'avc1.' + hex2(sps[1]) + hex2(sps[2]) + hex2(sps[3]);

  function sameBytes(a, b) {
    if (!a || !b || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  // ---- boxes ------------------------------------------------------------------------------

  // Big-endian fields into a byte array.
  class Bytes {
    constructor() { this.a = []; }
    u8(v) { this.a.push(v & 0xff); return this; }
    u16(v) { return this.u8(v >> 8).u8(v); }
    u32(v) { return this.u8(v >>> 24).u8(v >>> 16).u8(v >>> 8).u8(v); }
    u64(v) { return this.u32(Math.floor(v / 4294967296)).u32(v % 4294967296); }
    zeros(n) { for (let i = 0; i < n; i++) this.a.push(0); return this; }
    bytes(b) { for (const v of b) this.a.push(v); return this; }
    str(s) { for (let i = 0; i < s.length; i++) this.a.push(s.charCodeAt(i)); return this; }
  }

  // A box: size, type, then its fields and children (Uint8Arrays or Bytes), concatenated.
  function box(type, ...parts) {
    const chunks = parts.map((p) => (p instanceof Bytes ? Uint8Array.from(p.a) : p));
    const size = 8 + chunks.reduce((n, c) => n + c.length, 0);
    const out = new Uint8Array(size);
    new DataView(out.buffer).setUint32(0, size);
    for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
    let at = 8;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
  // A full box: version and flags first.
  const fullBox = (type, version, flags, ...parts) => box(type, new Bytes().u8(version).u8(flags >> 16).u16(flags), ...parts);

  const MATRIX = [0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000];
  const matrix = (b) => { for (const v of MATRIX) b.u32(v); return b; };

  function avcC(sps, pps) {
    return box('avcC', new Bytes()
      .u8(1).u8(sps[1]).u8(sps[2]).u8(sps[3]) // version, profile, constraint flags, level
      .u8(0xfc | 3) // lengthSizeMinusOne = 3: 4-byte NAL lengths in the samples
      .u8(0xe0 | 1).u16(sps.length).bytes(sps)
      .u8(1).u16(pps.length).bytes(pps));
  }

  // ftyp + moov for one AVC track `width`×`height`.
  function initSegment(sps, pps, width, height) {
    const ftyp = box('ftyp', new Bytes().str('isom').u32(0x200).str('isom').str('iso6').str('avc1').str('mp41'));
    const mvhd = fullBox('mvhd', 0, 0, matrix(new Bytes().u32(0).u32(0).u32(TIMESCALE).u32(0).u32(0x10000).u16(0x100).zeros(10))
      .zeros(24).u32(TRACK + 1));
    const tkhd = fullBox('tkhd', 0, 3, matrix(new Bytes().u32(0).u32(0).u32(TRACK).u32(0).u32(0).zeros(8).u16(0).u16(0).u16(0).u16(0))
      .u32(width * 65536).u32(height * 65536));
    const mdhd = fullBox('mdhd', 0, 0, new Bytes().u32(0).u32(0).u32(TIMESCALE).u32(0).u16(0x55c4).u16(0)); // language "und"
    const hdlr = fullBox('hdlr', 0, 0, new Bytes().u32(0).str('vide').zeros(12).str('pieyes\0'));
    const vmhd = fullBox('vmhd', 0, 1, new Bytes().zeros(8));
    const dinf = box('dinf', fullBox('dref', 0, 0, new Bytes().u32(1), fullBox('url ', 0, 1)));
    const avc1 = box('avc1', new Bytes()
      .zeros(6).u16(1) // reserved, data_reference_index
      .zeros(16).u16(width).u16(height)
      .u32(0x480000).u32(0x480000).u32(0).u16(1) // 72 dpi, reserved, frame_count
      .zeros(32).u16(0x18).u16(0xffff), // compressorname, depth, pre_defined = -1
    avcC(sps, pps));
    const empty = (type) => fullBox(type, 0, 0, new Bytes().u32(0));
    const stbl = box('stbl', fullBox('stsd', 0, 0, new Bytes().u32(1), avc1), empty('stts'), empty('stsc'),
      fullBox('stsz', 0, 0, new Bytes().u32(0).u32(0)), empty('stco'));
    const trak = box('trak', tkhd, box('mdia', mdhd, hdlr, box('minf', vmhd, dinf, stbl)));
    const mvex = box('mvex', fullBox('trex', 0, 0, new Bytes().u32(TRACK).u32(1).u32(0).u32(0).u32(0)));
    return concat([ftyp, box('moov', mvhd, trak, mvex)]);
  }

  // Sample flags (14496-12 8.8.3.1): a sync sample depends on nothing; any other depends on
  // others and is not a sync sample.
  const SYNC = 0x02000000;
  const NON_SYNC = 0x01010000;
  const MOOF_SIZE = 100; // moof(8) + mfhd(16) + traf(8 + tfhd 16 + tfdt 20 + trun 32)

  // moof + mdat for one sample: `nals` (without start codes), decode time and duration in µs.
  function fragment(seq, nals, decodeUs, durationUs, key) {
    const size = nals.reduce((n, u) => n + 4 + u.length, 0);
    const moof = box('moof',
      fullBox('mfhd', 0, 0, new Bytes().u32(seq)),
      box('traf',
        fullBox('tfhd', 0, 0x020000, new Bytes().u32(TRACK)), // default-base-is-moof
        fullBox('tfdt', 1, 0, new Bytes().u64(decodeUs)),
        // data-offset, sample-duration, -size and -flags present
        fullBox('trun', 0, 0x000701, new Bytes().u32(1).u32(MOOF_SIZE + 8).u32(durationUs).u32(size).u32(key ? SYNC : NON_SYNC))));
    const out = new Uint8Array(moof.length + 8 + size);
    out.set(moof, 0);
    const v = new DataView(out.buffer);
    let at = moof.length;
    v.setUint32(at, 8 + size);
    out.set([0x6d, 0x64, 0x61, 0x74], at + 4); // 'mdat'
    at += 8;
    for (const u of nals) {
      v.setUint32(at, u.length);
      out.set(u, at + 4);
      at += 4 + u.length;
    }
    return out;
  }

  function concat(parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  // ---- the muxer ----------------------------------------------------------------------------

  const DEFAULT_DURATION_US = 33333;

  class Muxer {
    // `minDurationUs`: no sample shorter than this. An MSE SourceBuffer takes a decode time more
    // than twice the last sample's duration after it as a discontinuity and drops every frame
    // up to the next keyframe; when frames are dropped before the page (a busy encoder, a slow
    // link) the gaps are uneven, so the MSE player pads each sample's duration. Only the last
    // frame's duration shows: each frame is on screen until the next one's time.
    constructor({ minDurationUs = 0 } = {}) {
      this.minDurationUs = minDurationUs;
      this.sps = null;
      this.pps = null;
      this.codec = null;
      this.seq = 0;
      this.baseUs = null; // capture time of media time 0
      this.lastUs = null;
      this.durationUs = DEFAULT_DURATION_US; // the last gap between frames: the next sample's duration (at least minDurationUs)
    }

    // One access unit. Returns { init, fragment, codec, timeS }: `init` (Uint8Array or null) when
    // the parameter sets are new or changed, to be appended first; `fragment` null until the
    // first keyframe with parameter sets, and for an access unit with no picture in it; `timeS`
    // the sample's media time in seconds.
    push(annexB, captureUs, key, width, height) {
      const all = nalUnits(annexB);
      let init = null;
      const sps = all.find((n) => (n[0] & 0x1f) === 7);
      const pps = all.find((n) => (n[0] & 0x1f) === 8);
      if (sps && pps && sps.length >= 4 && (!sameBytes(sps, this.sps) || !sameBytes(pps, this.pps))) {
        this.sps = sps.slice();
        this.pps = pps.slice();
        this.codec = codecOf(sps);
        init = initSegment(this.sps, this.pps, width, height);
      }
      // Parameter sets live in avcC; access unit delimiters are not needed in MP4.
      const nals = all.filter((n) => { const t = n[0] & 0x1f; return t !== 7 && t !== 8 && t !== 9; });
      if (!this.sps || !nals.length || (this.baseUs === null && !key)) return { init, fragment: null, codec: this.codec, timeS: null };
      if (this.baseUs === null) this.baseUs = captureUs;
      let t = captureUs - this.baseUs;
      if (this.lastUs !== null) {
        t = Math.max(t, this.lastUs + 1); // decode times only go forward
        const gap = t - this.lastUs;
        if (gap < 1000000) this.durationUs = gap;
      }
      this.lastUs = t;
      this.seq++;
      const duration = Math.max(this.durationUs, this.minDurationUs);
      return { init, fragment: fragment(this.seq, nals, t, duration, key), codec: this.codec, timeS: t / TIMESCALE };
    }

    // Capture time (µs) of a media time (s).
    captureUsAt(mediaTimeS) {
      return this.baseUs === null ? null : this.baseUs + Math.round(mediaTimeS * TIMESCALE);
    }
  }

  return { Muxer, nalUnits, codecOf, initSegment, fragment, concat, TIMESCALE };
})();

if (typeof module === 'object' && module.exports) module.exports = PieFmp4;
