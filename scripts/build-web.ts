// Builds the dashboard (collector/web) into collector/web/dist: one JS bundle and one CSS file with
// content-hashed names, and index.html naming them. Offline (esbuild and the packages in node_modules).
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { build } from 'esbuild';

const WEB = resolve(new URL('../collector/web', import.meta.url).pathname);
export const WEB_DIST = join(WEB, 'dist');

export interface WebBuild {
  outDir: string;
  files: string[];
  bytes: number;
  ms: number;
}

/**
 * Builds into `outDir`. Safe while a collector serves the folder and while another build runs:
 * hashed files are written first, index.html last (renamed into place), then files no build names
 * any more are removed.
 */
export async function buildWeb(outDir = WEB_DIST): Promise<WebBuild> {
  const started = Date.now();
  mkdirSync(outDir, { recursive: true });
  const result = await build({
    entryPoints: { app: join(WEB, 'src/main.ts'), style: join(WEB, 'src/style.css') },
    bundle: true,
    format: 'esm',
    // The terminal emulator and the player load only with a session's page.
    splitting: true,
    chunkNames: 'chunk-[hash]',
    target: ['chrome110', 'firefox115', 'safari16'],
    minify: true,
    sourcemap: 'linked',
    outdir: outDir,
    entryNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    // Fonts and images the packages' CSS names go next to it, never inlined as data the CSP must allow.
    loader: { '.woff': 'file', '.woff2': 'file', '.ttf': 'file', '.svg': 'file', '.png': 'file' },
    legalComments: 'linked',
    metafile: true,
    logLevel: 'warning',
    absWorkingDir: resolve(WEB, '../..'),
  });
  const outputs = Object.keys(result.metafile.outputs).map((path) => basename(path));
  const js = outputs.find((name) => /^app-.*\.js$/.test(name));
  const css = outputs.find((name) => /^style-.*\.css$/.test(name));
  if (!js || !css) throw new Error(`esbuild produced no app bundle or stylesheet: ${outputs.join(', ')}`);
  copyFileSync(join(WEB, 'favicon.svg'), join(outDir, 'favicon.svg'));
  const html = readFileSync(join(WEB, 'index.html'), 'utf8').replace('%APP_JS%', js).replace('%APP_CSS%', css);
  const temp = join(outDir, `.index-${process.pid}.html`);
  writeFileSync(temp, html);
  renameSync(temp, join(outDir, 'index.html'));
  const keep = new Set([...outputs, 'index.html', 'favicon.svg']);
  let bytes = 0;
  for (const name of readdirSync(outDir)) {
    if (name.startsWith('.index-')) continue;
    if (!keep.has(name)) rmSync(join(outDir, name), { force: true, recursive: true });
    else bytes += readFileSync(join(outDir, name)).length;
  }
  return { outDir, files: [...keep].sort(), bytes, ms: Date.now() - started };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const built = await buildWeb(process.argv[2] ? resolve(process.argv[2]) : WEB_DIST);
  process.stdout.write(`dashboard built in ${built.ms} ms: ${built.outDir} (${built.files.length} files, ${Math.round(built.bytes / 1024)} KiB)\n`);
}
