// The sharp (Node + libvips) peers of `imgpipe bench`, run by loadtest/bench_peers.py.
// Usage: node sharp_peer.cjs MODE FILE REPEAT OUT_DIR SPECS_JSON
//   MODE cascade: one shrink-on-load decode to the largest rendition, then each smaller one
//                 resized from the previous full-frame result (libvips used well);
//   MODE per-rendition: one pipeline per rendition, as AWS's image solutions use sharp.
// Prints JSON {ms: [...], cpu_ms: [...], rss_mb, files: [...]}; outputs go to OUT_DIR.
"use strict";
const fs = require("fs");
const path = require("path");
const sharp = require("sharp");

sharp.concurrency(1); // one core per image, as for every strategy of the bench
sharp.cache(false);

function pipelineFor(spec) {
  const fit = spec.fit === "cover" ? "cover" : "inside";
  return { width: spec.width, height: spec.height, fit, withoutEnlargement: fit === "inside" };
}

function webp(image, spec) {
  return image.webp({ quality: spec.quality, effort: spec.effort }).toBuffer();
}

async function perRendition(data, specs) {
  const outputs = [];
  for (const spec of specs) {
    outputs.push(await webp(sharp(data).rotate().resize(pipelineFor(spec)), spec));
  }
  return outputs;
}

async function cascade(data, specs) {
  // Largest first; each full-frame ("inside") result feeds the next rendition.
  const order = specs.map((s, i) => i).sort((a, b) => specs[b].width * specs[b].height - specs[a].width * specs[a].height);
  const outputs = new Array(specs.length);
  let previous = null;
  for (const index of order) {
    const spec = specs[index];
    const input = previous === null ? sharp(data).rotate() : sharp(previous.data, { raw: previous.info });
    const { data: pixels, info } = await input.resize(pipelineFor(spec)).raw().toBuffer({ resolveWithObject: true });
    outputs[index] = await webp(sharp(pixels, { raw: info }), spec);
    if (spec.fit === "inside") previous = { data: pixels, info };
  }
  return outputs;
}

async function main() {
  const [mode, file, repeatText, outDir, specsJson] = process.argv.slice(2);
  const specs = JSON.parse(specsJson);
  const run = mode === "cascade" ? cascade : perRendition;
  const data = fs.readFileSync(file);
  const baseline = process.resourceUsage().maxRSS;
  const ms = [];
  const cpu = [];
  let outputs = [];
  for (let i = 0; i < Number(repeatText); i++) {
    const started = process.hrtime.bigint();
    const cpuStart = process.cpuUsage();
    outputs = await run(data, specs);
    const used = process.cpuUsage(cpuStart);
    ms.push(Number(process.hrtime.bigint() - started) / 1e6);
    cpu.push((used.user + used.system) / 1000);
  }
  const files = outputs.map((output, i) => {
    const target = path.join(outDir, `${i}.webp`);
    fs.writeFileSync(target, output);
    return target;
  });
  const rssMb = (process.resourceUsage().maxRSS - baseline) / 1024;
  process.stdout.write(JSON.stringify({ ms, cpu_ms: cpu, rss_mb: rssMb, files }));
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
