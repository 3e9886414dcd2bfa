// Batch-1 greedy decode speed of llama.cpp (npm node-llama-cpp, prebuilt CPU binaries) on a GGUF file, timed the way
// `osprey benchmark` times Osprey: random prompt ids, end-of-sequence ignored (the loop takes exactly N tokens), prefill =
// time to the first token, decode tok/s = the remaining N-1 tokens over the time after the first.
// Usage (from the folder holding node_modules/node-llama-cpp):
//   node cpu_llama_bench.mjs MODEL.gguf PROMPT_LEN NEW_TOKENS THREADS REPEATS
import {getLlama} from "./node_modules/node-llama-cpp/dist/index.js";

const [model, promptLen, newTokens, threads, repeats] = [process.argv[2], ...process.argv.slice(3, 7).map(Number)];
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const m = await llama.loadModel({modelPath: model});
// The same pseudo-random prompt every run (a 32-bit LCG), ids inside the real vocabulary.
let s = 12345;
const prompt = Array.from({length: promptLen}, () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return 3 + (s % 150000); });
for (let r = 0; r < repeats + 1; r++) {   // the first pass warms up and is not reported
  // llama.cpp's defaults otherwise (f16 KV cache, flash attention as it decides): its fastest everyday setting.
  const context = await m.createContext({contextSize: 512, threads: {ideal: threads, min: threads}});
  const seq = context.getSequence();
  const start = performance.now();
  let first = 0, n = 0;
  for await (const token of seq.evaluate(prompt, {temperature: 0})) {
    n++;
    if (n === 1) first = performance.now();
    if (n >= newTokens) break;
  }
  const end = performance.now();
  if (r > 0)
    process.stdout.write(JSON.stringify({engine: "llama.cpp", model, threads, prompt: promptLen, new: n,
      prefill_s: (first - start) / 1000, decode_tok_s: (n - 1) / ((end - first) / 1000)}) + "\n");
  await context.dispose();
}
await m.dispose();
