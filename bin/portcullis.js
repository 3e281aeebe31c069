#!/usr/bin/env -S node --disable-warning=ExperimentalWarning --min-semi-space-size=16 --max-semi-space-size=16
// The `portcullis` command. In a checkout, Node runs the TypeScript sources
// directly (type stripping); an installed package runs the compiled dist/.
import { existsSync } from 'node:fs';

const [major] = process.versions.node.split('.').map(Number);
if (major < 26) {
  process.stderr.write(`portcullis: needs Node.js 26 or later (this is ${process.versions.node}); run it through npm (npx portcullis, npm start), which uses the Node 26 pinned in package.json\n`);
  process.exit(1);
}

const source = new URL('../src/cli/main.ts', import.meta.url);
const fromSource = existsSync(source) && !source.pathname.includes('/node_modules/');
const entry = fromSource ? source : new URL('../dist/cli/main.js', import.meta.url);
const { main } = await import(entry.href);
const code = await main(process.argv.slice(2));
if (code !== 0) process.exitCode = code;
