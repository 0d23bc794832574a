#!/usr/bin/env node
'use strict';
// Thin launcher: the CLI is bundled into dist/ by `npm run build`.
const path = require('path');
const fs = require('fs');
const bundled = path.join(__dirname, '..', 'dist', 'cli.js');
if (!fs.existsSync(bundled)) {
  console.error('diffusionvl: not built yet. Run `npm run setup` (or `npm run build`) in the project folder first.');
  process.exit(2);
}
require(bundled);
