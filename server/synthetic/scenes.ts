import { Rng } from './rng';
import { textPath, textWidth } from './strokeFont';

/**
 * Synthetic diagrams with questions, answers and captions: shapes (colours, counts), short rendered text, arrows
 * between labelled boxes and bar charts. A scene is a pure function of its Rng; it renders to an SVG string (the
 * stroke font keeps text independent of system fonts) that render.ts rasterises.
 */

export const IMAGE_SIZE = 112;

export const COLOURS = {
  red: '#d62728',
  orange: '#ff7f0e',
  yellow: '#e8c20c',
  green: '#2ca02c',
  blue: '#1f5fd6',
  purple: '#8e3fb0',
  black: '#111111',
} as const;
export type Colour = keyof typeof COLOURS;
export const COLOUR_NAMES = Object.keys(COLOURS) as Colour[];

export const SHAPES = ['circle', 'square', 'triangle', 'diamond'] as const;
export type Shape = (typeof SHAPES)[number];

/** Words for the text scenes: short, so they are readable at this size and tokenise to one token each. */
export const WORDS = [
  'CAT', 'DOG', 'SUN', 'BOX', 'MAP', 'CUP', 'KEY', 'PEN', 'BUS', 'HAT', 'FOX', 'OWL',
] as const;

export const BOX_LABELS = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H'] as const;

export type SceneKind = 'shapes' | 'text' | 'arrow' | 'chart';
export const SCENE_KINDS: readonly SceneKind[] = ['shapes', 'text', 'arrow', 'chart'];

export type QuestionType =
  | 'count'
  | 'count_colour'
  | 'colour_of'
  | 'shape_of'
  | 'read_text'
  | 'text_colour'
  | 'arrow_to'
  | 'arrow_from'
  | 'bar_tallest'
  | 'bar_shortest'
  | 'bar_count'
  | 'caption';

export const QUESTION_TYPES: readonly QuestionType[] = [
  'count', 'count_colour', 'colour_of', 'shape_of', 'read_text', 'text_colour',
  'arrow_to', 'arrow_from', 'bar_tallest', 'bar_shortest', 'bar_count', 'caption',
];

export interface QA {
  type: QuestionType;
  question: string;
  answer: string;
}

export interface Scene {
  kind: SceneKind;
  svg: string;
  /** Every question this scene can answer unambiguously (the caption is one of them). */
  qas: QA[];
  caption: string;
}

const CAPTION_QUESTION = 'Describe the image.';

function svgDoc(body: string): string {
  const s = IMAGE_SIZE;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${s}" height="${s}" viewBox="0 0 ${s} ${s}"><rect width="${s}" height="${s}" fill="#ffffff"/>${body}</svg>`;
}

const f = (v: number) => (Math.round(v * 100) / 100).toString();

function shapeSvg(shape: Shape, cx: number, cy: number, r: number, fill: string): string {
  switch (shape) {
    case 'circle':
      return `<circle cx="${f(cx)}" cy="${f(cy)}" r="${f(r)}" fill="${fill}"/>`;
    case 'square':
      return `<rect x="${f(cx - r)}" y="${f(cy - r)}" width="${f(2 * r)}" height="${f(2 * r)}" fill="${fill}"/>`;
    case 'triangle':
      return `<polygon points="${f(cx)},${f(cy - r)} ${f(cx + r)},${f(cy + 0.85 * r)} ${f(cx - r)},${f(cy + 0.85 * r)}" fill="${fill}"/>`;
    case 'diamond':
      return `<polygon points="${f(cx)},${f(cy - 1.2 * r)} ${f(cx + r)},${f(cy)} ${f(cx)},${f(cy + 1.2 * r)} ${f(cx - r)},${f(cy)}" fill="${fill}"/>`;
  }
}

/**
 * Layouts snap to a 4 × 4 grid of 28-pixel cells: the size of one merged vision token (2 × 2 patches of 14 px). Each
 * object, letter or box lies inside one token, so the small vision tower recognises it locally and the decoder
 * reasons over tokens; with free placement (objects straddling tokens) a model this size did not get past ~30 %
 * exact match in the CPU training budget.
 */
export const CELL = 28;
const GRID = IMAGE_SIZE / CELL;
const cellCentre = (i: number) => (i + 0.5) * CELL;

function shapesScene(rng: Rng): Scene {
  const n = rng.int(1, 3);
  // Distinct cells, listed in reading order so captions have a well-defined order.
  const cells = rng.sample(Array.from({ length: GRID * GRID }, (_, i) => i), n).sort((a, b) => a - b);
  const objs = cells.map((c) => ({
    shape: rng.pick(SHAPES),
    colour: rng.pick(COLOUR_NAMES),
    cx: cellCentre(c % GRID) + rng.int(-2, 2),
    cy: cellCentre(Math.floor(c / GRID)) + rng.int(-1, 1),
    r: rng.int(8, 10),
  }));
  const svg = svgDoc(objs.map((o) => shapeSvg(o.shape, o.cx, o.cy, o.r, COLOURS[o.colour])).join(''));
  const qas: QA[] = [{ type: 'count', question: 'How many shapes are there?', answer: String(n) }];
  // Ask about a colour that is present most of the time, sometimes one that is absent (answer 0).
  const askColour = rng.next() < 0.7 ? rng.pick(objs).colour : rng.pick(COLOUR_NAMES);
  qas.push({
    type: 'count_colour',
    question: `How many ${askColour} shapes are there?`,
    answer: String(objs.filter((o) => o.colour === askColour).length),
  });
  const uniqueShapes = SHAPES.filter((s) => objs.filter((o) => o.shape === s).length === 1);
  if (uniqueShapes.length > 0) {
    const s = rng.pick(uniqueShapes);
    qas.push({ type: 'colour_of', question: `What colour is the ${s}?`, answer: objs.find((o) => o.shape === s)!.colour });
  }
  const uniqueColours = COLOUR_NAMES.filter((c) => objs.filter((o) => o.colour === c).length === 1);
  if (uniqueColours.length > 0) {
    const c = rng.pick(uniqueColours);
    qas.push({ type: 'shape_of', question: `Which shape is ${c}?`, answer: objs.find((o) => o.colour === c)!.shape });
  }
  const caption = n <= 2 ? objs.map((o) => `${o.colour === 'orange' ? 'an' : 'a'} ${o.colour} ${o.shape}`).join(' and ') : `${n} shapes`;
  qas.push({ type: 'caption', question: CAPTION_QUESTION, answer: caption });
  return { kind: 'shapes', svg, qas, caption };
}

function textScene(rng: Rng): Scene {
  const word = rng.pick(WORDS);
  const colour = rng.pick(COLOUR_NAMES.filter((c) => c !== 'yellow'));
  const height = rng.int(18, 22);
  const row = rng.int(0, GRID - 1);
  const col = rng.int(0, GRID - word.length);
  const dy = rng.int(-1, 1);
  // One letter per cell, centred in it.
  const glyphs = [...word]
    .map((ch, i) => {
      const x = cellCentre(col + i) - textWidth(ch, height) / 2;
      const y = cellCentre(row) - height / 2 + dy;
      return textPath(ch, x, y, height, COLOURS[colour], height / 7);
    })
    .join('');
  const caption = `the word ${word}`;
  return {
    kind: 'text',
    svg: svgDoc(glyphs),
    caption,
    qas: [
      { type: 'read_text', question: 'What does the text say?', answer: word },
      { type: 'text_colour', question: 'What colour is the text?', answer: colour },
      { type: 'caption', question: CAPTION_QUESTION, answer: caption },
    ],
  };
}

function arrowScene(rng: Rng): Scene {
  const [from, to] = rng.sample(BOX_LABELS, 2);
  const box = 24;
  const horizontal = rng.next() < 0.5;
  // Two boxes in one row (or column) of cells with at least one cell between them for the arrow.
  const lane = rng.int(0, GRID - 1);
  const a = rng.int(0, GRID - 3);
  const b = rng.int(a + 2, GRID - 1);
  const fromFirst = rng.next() < 0.5;
  const at = (i: number) => (horizontal ? { x: cellCentre(i), y: cellCentre(lane) } : { x: cellCentre(lane), y: cellCentre(i) });
  let body = '';
  for (const [i, label] of [[a, fromFirst ? from : to], [b, fromFirst ? to : from]] as const) {
    const c = at(i);
    body += `<rect x="${c.x - box / 2}" y="${c.y - box / 2}" width="${box}" height="${box}" fill="#ffffff" stroke="#111111" stroke-width="2"/>`;
    const h = 13;
    body += textPath(label, c.x - textWidth(label, h) / 2, c.y - h / 2, h, '#111111', 2.2);
  }
  const lo = cellCentre(a) + box / 2 + 2;
  const hi = cellCentre(b) - box / 2 - 2;
  const start = fromFirst ? lo : hi;
  const end = fromFirst ? hi : lo;
  const mid = cellCentre(lane);
  const dir = Math.sign(end - start);
  const head = 7;
  const pt = (p: number, off = 0) => (horizontal ? `${f(p)},${f(mid + off)}` : `${f(mid + off)},${f(p)}`);
  body += `<polyline points="${pt(start)} ${pt(end - dir * head)}" fill="none" stroke="#111111" stroke-width="2.5"/>`;
  body += `<polygon points="${pt(end)} ${pt(end - dir * head, -head * 0.7)} ${pt(end - dir * head, head * 0.7)}" fill="#111111"/>`;
  const caption = `an arrow from ${from} to ${to}`;
  return {
    kind: 'arrow',
    svg: svgDoc(body),
    caption,
    qas: [
      { type: 'arrow_to', question: 'Which box does the arrow point to?', answer: to },
      { type: 'arrow_from', question: 'Which box does the arrow start from?', answer: from },
      { type: 'caption', question: CAPTION_QUESTION, answer: caption },
    ],
  };
}

function chartScene(rng: Rng): Scene {
  const n = rng.int(3, 4);
  const colours = rng.sample(COLOUR_NAMES.filter((c) => c !== 'black'), n);
  // One bar per column of cells; heights are distinct whole numbers of cells (minus a margin), so "tallest" and
  // "shortest" are never ambiguous and each bar top falls inside a known token.
  const levels = rng.sample([1, 2, 3, 4], n);
  const first = rng.int(0, GRID - n);
  const base = IMAGE_SIZE - 4;
  const barW = rng.int(14, 18);
  let body = `<line x1="2" y1="${base + 1}" x2="${IMAGE_SIZE - 2}" y2="${base + 1}" stroke="#111111" stroke-width="2"/>`;
  colours.forEach((c, i) => {
    const h = levels[i] * CELL - rng.int(6, 10);
    body += `<rect x="${cellCentre(first + i) - barW / 2}" y="${base - h}" width="${barW}" height="${h}" fill="${COLOURS[c]}"/>`;
  });
  const tallest = colours[levels.indexOf(Math.max(...levels))];
  const shortest = colours[levels.indexOf(Math.min(...levels))];
  const caption = `a bar chart with ${n} bars`;
  return {
    kind: 'chart',
    svg: svgDoc(body),
    caption,
    qas: [
      { type: 'bar_tallest', question: 'Which bar is the tallest?', answer: tallest },
      { type: 'bar_shortest', question: 'Which bar is the shortest?', answer: shortest },
      { type: 'bar_count', question: 'How many bars are there?', answer: String(n) },
      { type: 'caption', question: CAPTION_QUESTION, answer: caption },
    ],
  };
}

export function makeScene(rng: Rng, kind: SceneKind = rng.pick(SCENE_KINDS)): Scene {
  switch (kind) {
    case 'shapes':
      return shapesScene(rng);
    case 'text':
      return textScene(rng);
    case 'arrow':
      return arrowScene(rng);
    case 'chart':
      return chartScene(rng);
  }
}
