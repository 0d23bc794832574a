import { Rng } from './rng';
import { makeScene, type QA, type QuestionType, type Scene, type SceneKind } from './scenes';

/**
 * Items for training and evaluation. Every item is a pure function of (seed, split, index): the trainer's splits and
 * `eval-synthetic --seed N` draw from disjoint keys, so evaluation images are never training images.
 */

export type Split = 'train' | 'val' | 'test' | 'eval';

export interface SyntheticItem {
  /** "seed/split/index": reproduces the item. */
  key: string;
  kind: SceneKind;
  svg: string;
  type: QuestionType;
  question: string;
  answer: string;
}

export function sceneAt(seed: number, split: Split, index: number): Scene {
  return makeScene(new Rng(`${seed}/${split}/${index}`));
}

/**
 * One question per image, picked uniformly among the questions its scene can answer (scene kinds are equally
 * likely; every scene has a caption, so about a third of the items are captions).
 */
export function itemAt(seed: number, split: Split, index: number): SyntheticItem {
  const key = `${seed}/${split}/${index}`;
  const scene = makeScene(new Rng(key));
  const qa: QA = new Rng(`${key}/q`).pick(scene.qas);
  return { key, kind: scene.kind, svg: scene.svg, type: qa.type, question: qa.question, answer: qa.answer };
}

export function drawItems(seed: number, split: Split, count: number, start = 0): SyntheticItem[] {
  const out: SyntheticItem[] = [];
  for (let i = start; i < start + count; i++) out.push(itemAt(seed, split, i));
  return out;
}

/** Exact match as the evaluation scores it: trimmed, case-sensitive, one trailing period dropped (as the reference eval does). */
export function isCorrect(predicted: string, answer: string): boolean {
  const p = predicted.trim().replace(/\.$/, '').trim();
  return p === answer;
}
