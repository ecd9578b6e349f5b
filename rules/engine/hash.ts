// MurmurHash3 x86_128 (Austin Appleby, public domain) over a string's UTF-16 code units, each taken as
// two little-endian bytes: the same bytes as Buffer.from(text, 'utf16le'), without making them.

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** The 32-bit word of code units `i` and `i + 1` (0 past the end). */
function word(text: string, i: number): number {
  return (i < text.length ? text.charCodeAt(i) : 0) | ((i + 1 < text.length ? text.charCodeAt(i + 1) : 0) << 16);
}

/** 128 bits of MurmurHash3 x86_128 with seed 0, as 32 hex digits. */
export function hash128(text: string): string {
  const words = hash128Words(text);
  return hex8(words[0]!) + hex8(words[1]!) + hex8(words[2]!) + hex8(words[3]!);
}

const WORDS = new Int32Array(4);
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Two hex digits of the byte (a table: formatting numbers dominated building an alert id). */
export function hexByte(byte: number): string {
  return HEX[byte & 255]!;
}

export function hex8(h: number): string {
  return HEX[h >>> 24]! + HEX[(h >>> 16) & 255]! + HEX[(h >>> 8) & 255]! + HEX[h & 255]!;
}

/** The hash as four 32-bit words (h1..h4), in a buffer reused by the next call. */
export function hash128Words(text: string): Int32Array {
  let h1 = 0;
  let h2 = 0;
  let h3 = 0;
  let h4 = 0;
  const units = text.length;
  const blocks = units >> 3;
  for (let b = 0; b < blocks; b++) {
    const i = b << 3;
    let k1 = word(text, i);
    let k2 = word(text, i + 2);
    let k3 = word(text, i + 4);
    let k4 = word(text, i + 6);
    k1 = Math.imul(rotl(Math.imul(k1, C1), 15), C2);
    h1 ^= k1;
    h1 = (Math.imul(rotl(h1, 19) + h2, 5) + 0x561ccd1b) | 0;
    k2 = Math.imul(rotl(Math.imul(k2, C2), 16), C3);
    h2 ^= k2;
    h2 = (Math.imul(rotl(h2, 17) + h3, 5) + 0x0bcaa747) | 0;
    k3 = Math.imul(rotl(Math.imul(k3, C3), 17), C4);
    h3 ^= k3;
    h3 = (Math.imul(rotl(h3, 15) + h4, 5) + 0x96cd1c35) | 0;
    k4 = Math.imul(rotl(Math.imul(k4, C4), 18), C1);
    h4 ^= k4;
    h4 = (Math.imul(rotl(h4, 13) + h1, 5) + 0x32ac3b17) | 0;
  }
  // The tail: up to 7 code units (14 bytes), zero-padded into k1..k4 as the reference does.
  const i = blocks << 3;
  if (i < units) {
    const rest = units - i;
    if (rest > 6) h4 ^= Math.imul(rotl(Math.imul(word(text, i + 6), C4), 18), C1);
    if (rest > 4) h3 ^= Math.imul(rotl(Math.imul(word(text, i + 4), C3), 17), C4);
    if (rest > 2) h2 ^= Math.imul(rotl(Math.imul(word(text, i + 2), C2), 16), C3);
    h1 ^= Math.imul(rotl(Math.imul(word(text, i), C1), 15), C2);
  }
  const bytes = units * 2;
  h1 ^= bytes;
  h2 ^= bytes;
  h3 ^= bytes;
  h4 ^= bytes;
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h3 = fmix(h3);
  h4 = fmix(h4);
  h1 = (h1 + h2 + h3 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  WORDS[0] = h1;
  WORDS[1] = h2;
  WORDS[2] = h3;
  WORDS[3] = h4;
  return WORDS;
}
