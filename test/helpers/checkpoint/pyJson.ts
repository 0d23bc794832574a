/**
 * Byte-exact emulation of Python's `json.dumps(obj, indent=…, sort_keys=True)`, needed to regenerate reference
 * checkpoints whose config files were written by Python. JS numbers do not say whether they were Python floats,
 * so floats are wrapped in `PyFloat` (plain numbers are written as ints).
 */
export class PyFloat {
  constructor(readonly value: number) {}
}

export type PyJson = null | boolean | number | string | PyFloat | PyJson[] | { [key: string]: PyJson };

export const pyFloat = (v: number): PyFloat => new PyFloat(v);

/** Python's float repr: shortest round-trip digits; scientific when exponent < -4 or ≥ 16; ".0" on integral values. */
export function pyFloatRepr(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  if (v === 0) return Object.is(v, -0) ? '-0.0' : '0.0';
  const [mant, expStr] = Math.abs(v).toExponential().split('e'); // shortest digits, like repr
  const exp = Number(expStr);
  const digits = mant.replace('.', '');
  const sign = v < 0 ? '-' : '';
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  if (digits.length <= exp + 1) return `${sign}${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
}

/** Python's default ensure_ascii string escaping. */
function pyString(s: string): string {
  return JSON.stringify(s).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function pyKeyCompare(a: string, b: string): number {
  // Python sorts str by code point; JS `<` compares UTF-16 units, which differs only beyond the BMP.
  const ca = [...a].map((c) => c.codePointAt(0) as number);
  const cb = [...b].map((c) => c.codePointAt(0) as number);
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) if (ca[i] !== cb[i]) return ca[i] - cb[i];
  return ca.length - cb.length;
}

function scalar(v: PyJson): string | undefined {
  if (v === null) return 'null';
  if (v === true) return 'true';
  if (v === false) return 'false';
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`pyJson: ${v} is not an integer; wrap floats in PyFloat`);
    return String(v);
  }
  if (typeof v === 'string') return pyString(v);
  if (v instanceof PyFloat) return pyFloatRepr(v.value);
  return undefined;
}

/**
 * `json.dumps(v, indent=indent, sort_keys=True)` when indent is given, else with `separators=(",", ":")`.
 */
export function pyJsonDumps(v: PyJson, indent?: number): string {
  const nl = indent === undefined ? '' : '\n';
  const itemSep = ','; // Python uses "," between items whether or not it indents
  const keySep = indent === undefined ? ':' : ': ';
  const walk = (x: PyJson, depth: number): string => {
    const s = scalar(x);
    if (s !== undefined) return s;
    const pad = indent === undefined ? '' : ' '.repeat(indent * (depth + 1));
    const end = indent === undefined ? '' : ' '.repeat(indent * depth);
    if (Array.isArray(x)) {
      if (x.length === 0) return '[]';
      return `[${nl}${x.map((e) => pad + walk(e, depth + 1)).join(itemSep + nl)}${nl}${end}]`;
    }
    const obj = x as { [key: string]: PyJson };
    const keys = Object.keys(obj).sort(pyKeyCompare);
    if (keys.length === 0) return '{}';
    return `{${nl}${keys.map((k) => `${pad}${pyString(k)}${keySep}${walk(obj[k], depth + 1)}`).join(itemSep + nl)}${nl}${end}}`;
  };
  return walk(v, 0);
}
