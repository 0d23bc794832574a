/**
 * File extensions treated as images (lower case, no dot): what the extension's pickers and explorer menus offer
 * (package.json's `when` clauses are checked against this list by test/sharedTables.test.ts) and what the server
 * recognises as an image reference in a document. Files are identified by their content when decoded; this list
 * only decides what is offered and looked for.
 */
export const IMAGE_FILE_EXTENSIONS = ['png', 'jpg', 'jpeg', 'gif', 'webp', 'bmp', 'tif', 'tiff', 'avif', 'svg', 'svgz'] as const;

/** `png|jpg|…`, for regular expressions. */
export const IMAGE_EXTENSION_ALTERNATION = IMAGE_FILE_EXTENSIONS.join('|');

export function hasImageExtension(path: string): boolean {
  const dot = path.lastIndexOf('.');
  return dot >= 0 && (IMAGE_FILE_EXTENSIONS as readonly string[]).includes(path.slice(dot + 1).toLowerCase());
}
