// www/fmp4.js in node, no browser: Annex-B splitting, the boxes it writes (sizes, order,
// offsets, times, sample flags), and a file of its init segment and fragments read back by
// ffprobe/ffmpeg: every frame decodes, at the right size and time.
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, root } from './lib.mjs';

const F = createRequire(import.meta.url)(join(root, 'www', 'fmp4.js'));

// ---- a box reader ---------------------------------------------------------------------------
const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'stbl', 'dinf', 'mvex', 'moof', 'traf']);
function boxes(b, from = 0, to = b.length) {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = [];
  let at = from;
  while (at < to) {
    const size = v.getUint32(at);
    const type = String.fromCharCode(...b.subarray(at + 4, at + 8));
    if (size < 8 || at + size > to) throw new Error(`bad box ${type} size ${size} at ${at} (end ${to})`);
    const bx = { type, at, size, body: b.subarray(at + 8, at + size) };
    if (CONTAINERS.has(type)) bx.children = boxes(b, at + 8, at + size);
    else if (type === 'stsd') bx.children = boxes(b, at + 16, at + size);
    else if (type === 'avc1') bx.children = boxes(b, at + 8 + 78, at + size);
    out.push(bx);
    at += size;
  }
  return out;
}
const find = (list, path) => {
  let cur = { children: list };
  for (const t of path.split('/')) {
    cur = (cur.children || []).find((c) => c.type === t);
    if (!cur) return null;
  }
  return cur;
};
const u32 = (b, at) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at);

// ---- Annex B ------------------------------------------------------------------------------
{
  const au = Uint8Array.from([0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xaa, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 1, 2, 0, 3, 0]);
  const n = F.nalUnits(au).map((u) => [...u]);
  check(JSON.stringify(n) === JSON.stringify([[0x09, 0xf0], [0x67, 0x42, 0xc0, 0x1e, 0xaa], [0x68, 0xce], [0x65, 1, 2, 0, 3]]),
    'nalUnits splits 3- and 4-byte start codes and drops trailing zeros: ' + JSON.stringify(n));
  check(F.nalUnits(Uint8Array.from([1, 2, 3])).length === 0 && F.nalUnits(new Uint8Array(0)).length === 0, 'no start code, no NAL units');
  check(F.codecOf(Uint8Array.from([0x67, 0x42, 0xe0, 0x1f])) === 'avc1.42E01F', 'codec string from the SPS');
}

// ---- real H.264: baseline from x264, an AUD before each access unit, SPS+PPS before each IDR -------
const dir = mkdtempSync(join(tmpdir(), 'pieyes-fmp4-'));
const W = 320, H = 240, FRAMES = 45, GOP = 15;
execFileSync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', `testsrc=size=${W}x${H}:rate=30`, '-frames:v', String(FRAMES),
  '-c:v', 'libx264', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p', '-bf', '0',
  '-x264-params', `aud=1:repeat-headers=1:keyint=${GOP}:min-keyint=${GOP}:scenecut=0`, '-f', 'h264', join(dir, 'in.h264')]);
const stream = new Uint8Array(readFileSync(join(dir, 'in.h264')));
// Access units: split before each AUD.
const units = [];
{
  let start = 0;
  for (let i = 4; i + 4 < stream.length; i++) {
    if (stream[i] === 0 && stream[i + 1] === 0 && stream[i + 2] === 0 && stream[i + 3] === 1 && (stream[i + 4] & 0x1f) === 9) {
      units.push(stream.subarray(start, i));
      start = i;
    }
  }
  units.push(stream.subarray(start));
}
check(units.length === FRAMES, `x264 gave ${units.length} access units`);
const isKey = (au) => F.nalUnits(au).some((n) => (n[0] & 0x1f) === 5);

const mux = new F.Muxer();
const T0 = 1_700_000_000_123_456; // capture times as the daemon's: µs on its clock
const STEP = 33_333;
// A delta frame before any keyframe is held back (MSE needs a random access point first).
{
  const r = mux.push(units[1], T0 - STEP, false, W, H);
  check(r.fragment === null, 'no fragment before the first keyframe');
}
const out = [];
let inits = 0;
const frags = [];
for (const [i, au] of units.entries()) {
  const key = isKey(au);
  const r = mux.push(au, T0 + i * STEP, key, W, H);
  if (r.init) {
    inits++;
    out.push(r.init);
  }
  if (r.fragment === null) throw new Error(`access unit ${i} (key ${key}) gave no fragment`);
  out.push(r.fragment);
  frags.push({ bytes: r.fragment, key, timeS: r.timeS, au });
  if (i === 0) check(/^avc1\.42[0-9A-F]{4}$/.test(r.codec), `the first keyframe gives the init segment and a fragment, codec ${r.codec}`);
}
check(inits === 1, 'one init segment for unchanged parameter sets (repeated before each IDR)');

// The init segment's boxes.
const init = boxes(out[0]);
check(init.map((b) => b.type).join() === 'ftyp,moov', 'init segment: ftyp, moov');
check(find(init, 'moov').children.map((b) => b.type).join() === 'mvhd,trak,mvex', 'moov: mvhd, trak, mvex');
check(u32(find(init, 'moov/mvhd').body, 12) === 1_000_000, 'timescale 1 µs');
const tkhd = find(init, 'moov/trak/tkhd').body;
check(u32(tkhd, 76) === W * 65536 && u32(tkhd, 80) === H * 65536, 'tkhd width and height');
const avcC = find(init, 'moov/trak/mdia/minf/stbl/stsd/avc1/avcC');
check(avcC && avcC.body[0] === 1 && (avcC.body[4] & 3) === 3, 'avc1 carries avcC with 4-byte NAL lengths');
const sps = F.nalUnits(units[0]).find((n) => (n[0] & 0x1f) === 7);
check(Buffer.from(avcC.body.subarray(8, 8 + sps.length)).equals(Buffer.from(sps)), 'avcC holds the SPS');

// Each fragment: moof (mfhd, traf: tfhd, tfdt, trun) then mdat; trun's data offset lands on the
// mdat's payload; tfdt is capture time minus the first frame's; flags tell sync samples.
for (const [i, f] of frags.entries()) {
  const b = boxes(f.bytes);
  if (b.map((x) => x.type).join() !== 'moof,mdat') throw new Error('fragment ' + i + ': ' + b.map((x) => x.type));
  const seq = u32(find(b, 'moof/mfhd').body, 4);
  const tfdt = find(b, 'moof/traf/tfdt').body;
  const t = u32(tfdt, 4) * 4294967296 + u32(tfdt, 8);
  const trun = find(b, 'moof/traf/trun').body;
  const [count, offset, dur, size, flags] = [4, 8, 12, 16, 20].map((at) => u32(trun, at));
  const mdat = b[1];
  if (seq !== i + 1 || count !== 1 || offset !== mdat.at + 8 || size !== mdat.size - 8 || t !== i * STEP ||
      (i > 0 && dur !== STEP) || ((flags & 0x10000) === 0) !== f.key || Math.abs(f.timeS - t / 1e6) > 1e-9) {
    throw new Error(`fragment ${i}: seq ${seq} count ${count} offset ${offset} (mdat at ${mdat.at}) size ${size}/${mdat.size} t ${t} dur ${dur} flags ${flags.toString(16)} key ${f.key}`);
  }
  // mdat: length-prefixed NAL units, the AU's slices without AUD/SPS/PPS.
  const want = F.nalUnits(f.au).filter((n) => ![7, 8, 9].includes(n[0] & 0x1f));
  let at = 0, k = 0;
  while (at < mdat.body.length) {
    const n = u32(mdat.body, at);
    if (!Buffer.from(mdat.body.subarray(at + 4, at + 4 + n)).equals(Buffer.from(want[k++]))) throw new Error(`fragment ${i}: NAL ${k - 1} differs`);
    at += 4 + n;
  }
  if (k !== want.length) throw new Error(`fragment ${i}: ${k} NAL units, want ${want.length}`);
}
check(true, `${frags.length} fragments: moof+mdat, data offsets, tfdt = capture time − first, durations, sync flags, NAL units`);
check(mux.captureUsAt(frags[10].timeS) === T0 + 10 * STEP, 'media time maps back to capture time');

// Time never goes backwards; a changed SPS makes a new init segment.
{
  const m = new F.Muxer();
  m.push(units[0], 5_000_000, true, W, H);
  const r = m.push(units[1], 4_000_000, false, W, H);
  const tfdt = find(boxes(r.fragment), 'moof/traf/tfdt').body;
  check(u32(tfdt, 8) === 1 && r.timeS > 0, 'a capture time that went back is clamped to just after the last');
  const changed = Uint8Array.from(units[GOP]);
  const at = changed.findIndex((_, i) => changed[i] === 0 && changed[i + 1] === 0 && changed[i + 2] === 1 && (changed[i + 3] & 0x1f) === 7);
  changed[at + 6] ^= 0x01; // a bit in the SPS body
  check(m.push(changed, 5_100_000, true, W, H).init !== null, 'a changed SPS gives a new init segment');
}

// The MSE player's padded durations: never shorter than asked, the real gap when longer.
{
  const m = new F.Muxer({ minDurationUs: 250_000 });
  const durs = [0, 1, 2].map((i) => {
    const f = m.push(units[i], T0 + i * STEP, i === 0, W, H).fragment;
    return u32(find(boxes(f), 'moof/traf/trun').body, 12);
  });
  const late = u32(find(boxes(m.push(units[3], T0 + 2 * STEP + 400_000, false, W, H).fragment), 'moof/traf/trun').body, 12);
  check(durs.every((d) => d === 250_000) && late === 400_000, `minDurationUs pads each sample (${durs}, after a 400 ms gap ${late})`);
}

// ffprobe reads the file: every frame, at the size, at the capture-time spacing.
const file = join(dir, 'out.mp4');
writeFileSync(file, Buffer.concat(out.map((b) => Buffer.from(b))));
const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-count_frames',
  '-show_entries', 'stream=codec_name,profile,width,height,nb_read_frames:frame=pts_time,key_frame', '-of', 'json', file]).toString());
const s = probe.streams[0];
check(s.codec_name === 'h264' && s.width === W && s.height === H && /Baseline/.test(s.profile), `ffprobe: ${s.codec_name} ${s.profile} ${s.width}x${s.height}`);
check(Number(s.nb_read_frames) === FRAMES, `ffprobe decodes all ${FRAMES} frames (${s.nb_read_frames})`);
const pts = probe.frames.map((f) => Number(f.pts_time));
check(pts.every((p, i) => Math.abs(p - i * STEP / 1e6) < 1e-5), 'frame times are the capture times: ' + pts.slice(0, 4).join(', ') + ' …');
check(probe.frames.filter((f) => f.key_frame === 1).length === FRAMES / GOP, `${FRAMES / GOP} keyframes`);
const errs = execFileSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'null', '-'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
check(errs.trim() === '', 'ffmpeg decodes the file without a complaint');
rmSync(dir, { recursive: true, force: true });
