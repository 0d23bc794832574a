import { MAX_IMAGE_BYTES } from '../engine/image/limits';

/**
 * The HTTP server's limits, defined once (the CLI's flags override the ones it names). Every one bounds what a
 * client can make the server hold: memory for bodies, sockets for slow clients, waiting requests for storms.
 */

/** Largest request body: one image at the engine's byte limit as base64, plus room for the messages. */
export const MAX_BODY_BYTES = Math.ceil((MAX_IMAGE_BYTES * 4) / 3) + 1024 * 1024;

/** Images in one request (each at most MAX_IMAGE_BYTES; the body limit bounds their sum). */
export const MAX_IMAGES_PER_REQUEST = 8;

/** The whole header block must arrive within this (node's `headersTimeout`). */
export const HEADERS_TIMEOUT_MS = 10_000;

/** The whole request, body included, must arrive within this (node's `requestTimeout`, and our own body deadline). */
export const BODY_TIMEOUT_MS = 30_000;

/** Largest header block (node's `maxHeaderSize`). */
export const MAX_HEADER_BYTES = 16 * 1024;

/** Idle keep-alive connections are closed after this. */
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;

/** Open connections at most; more are refused by the socket layer. */
export const MAX_CONNECTIONS = 256;

/** Requests waiting for the model beyond the one running; more are answered 429 (`--max-queue`). */
export const DEFAULT_MAX_QUEUE = 16;

/** What a 429 tells the client to wait, in seconds. */
export const RETRY_AFTER_S = 2;

/** Remote image URLs (only with `--allow-image-urls`): time for the whole fetch, redirects followed. */
export const IMAGE_FETCH_TIMEOUT_MS = 10_000;
export const IMAGE_FETCH_MAX_REDIRECTS = 3;
