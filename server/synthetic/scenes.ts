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
  'ZIP', 'JAM', 'ICE', 'WAX', 'TOY', 'VAN', 'RUG', 'EGG',
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

function shapesScene(rng: Rng): Scene {
  const n = rng.int(1, 4);
  const cell = IMAGE_SIZE / 3;
  // Distinct cells of a 3×3 grid, listed in reading order so captions have a well-defined order.
  const cells = rng.sample([0, 1, 2, 3, 4, 5, 6, 7, 8], n).sort((a, b) => a - b);
  const objs = cells.map((c) => ({
    shape: rng.pick(SHAPES),
    colour: rng.pick(COLOUR_NAMES),
    cx: (c % 3 + 0.5) * cell + rng.int(-5, 5),
    cy: (Math.floor(c / 3) + 0.5) * cell + rng.int(-5, 5),
    r: rng.int(9, 12),
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
  const height = rng.int(22, 32);
  const width = textWidth(word, height);
  const x = rng.int(6, Math.floor(IMAGE_SIZE - 6 - width));
  const y = rng.int(6, IMAGE_SIZE - 6 - height);
  const svg = svgDoc(textPath(word, x, y, height, COLOURS[colour], height / 7));
  const caption = `the word ${word}`;
  return {
    kind: 'text',
    svg,
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
  const side = 30;
  const horizontal = rng.next() < 0.5;
  // Two boxes on a line, in random order, the arrow runs from `from` to `to` between their facing edges.
  const fromFirst = rng.next() < 0.5;
  const across = rng.int(8, IMAGE_SIZE - 8 - side);
  const a = rng.int(4, 14);
  const b = IMAGE_SIZE - side - rng.int(4, 14);
  const boxes = [
    { label: fromFirst ? from : to, at: a },
    { label: fromFirst ? to : from, at: b },
  ];
  const pos = (at: number) => (horizontal ? { x: at, y: across } : { x: across, y: at });
  let body = '';
  for (const box of boxes) {
    const p = pos(box.at);
    body += `<rect x="${p.x}" y="${p.y}" width="${side}" height="${side}" fill="#ffffff" stroke="#111111" stroke-width="2"/>`;
    const h = 14;
    body += textPath(box.label, p.x + (side - textWidth(box.label, h)) / 2, p.y + (side - h) / 2, h, '#111111', 2.2);
  }
  const start = fromFirst ? a + side + 3 : b - 3;
  const end = fromFirst ? b - 3 : a + side + 3;
  const mid = across + side / 2;
  const dir = Math.sign(end - start);
  const head = 7;
  const line = (p: number) => (horizontal ? `${f(p)},${f(mid)}` : `${f(mid)},${f(p)}`);
  const side1 = horizontal ? `${f(end - dir * head)},${f(mid - head * 0.7)}` : `${f(mid - head * 0.7)},${f(end - dir * head)}`;
  const side2 = horizontal ? `${f(end - dir * head)},${f(mid + head * 0.7)}` : `${f(mid + head * 0.7)},${f(end - dir * head)}`;
  body += `<polyline points="${line(start)} ${line(end - dir * head)}" fill="none" stroke="#111111" stroke-width="2.5"/>`;
  body += `<polygon points="${line(end)} ${side1} ${side2}" fill="#111111"/>`;
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
  // Distinct heights at least 10 px apart, so "tallest" and "shortest" are never ambiguous.
  const levels = rng.sample([1, 2, 3, 4, 5, 6, 7], n);
  const heights = levels.map((l) => l * 11 + rng.int(-2, 2));
  const base = IMAGE_SIZE - 12;
  const barW = rng.int(12, 16);
  const gap = rng.int(6, 10);
  const total = n * barW + (n - 1) * gap;
  const x0 = Math.floor((IMAGE_SIZE - total) / 2) + rng.int(-4, 4);
  let body = `<line x1="${x0 - 6}" y1="${base}" x2="${x0 + total + 6}" y2="${base}" stroke="#111111" stroke-width="2"/>`;
  body += `<line x1="${x0 - 6}" y1="${base}" x2="${x0 - 6}" y2="8" stroke="#111111" stroke-width="2"/>`;
  colours.forEach((c, i) => {
    body += `<rect x="${x0 + i * (barW + gap)}" y="${base - heights[i]}" width="${barW}" height="${heights[i]}" fill="${COLOURS[c]}"/>`;
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
