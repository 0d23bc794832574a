/** The file a converted model folder is recognised by (the converter writes it, everything else looks for it). Kept
 * in a module of its own so the protocol and the extension can share it without loading the manifest reader. */
export const MANIFEST_FILE = 'manifest.json';
