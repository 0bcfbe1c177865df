// The loop on Atlas Cloud's FLUX.1 [schnell] page, in JavaScript: one image at a time;
// submit, poll at once, then poll again every `pollMs` until done; download the output.
// argv: <baseURL> <apiKey> <count> <pollMs> <outDir>
// Prints BENCH_RESULT { ms, maxRSS }.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

const [baseURL, apiKey, countArg, pollArg, outDir] = process.argv.slice(2)
const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }
mkdirSync(outDir, { recursive: true })
const started = performance.now()
for (let i = 0; i < Number(countArg); i++) {
  const submitted = await (
    await fetch(`${baseURL}/api/v1/model/generateImage`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ model: 'black-forest-labs/flux-schnell', prompt: `Naive loop image ${i}`, width: 1024, height: 1024, seed: i }),
    })
  ).json()
  const id = submitted.data.id
  let output
  for (;;) {
    const { data } = await (await fetch(`${baseURL}/api/v1/model/prediction/${id}`, { headers })).json()
    if (data.status === 'completed') {
      output = data.outputs[0]
      break
    }
    if (data.status === 'failed') throw new Error(data.error)
    await sleep(Number(pollArg))
  }
  writeFileSync(join(outDir, `${i}.png`), Buffer.from(await (await fetch(output)).arrayBuffer()))
}
const ms = performance.now() - started
process.stdout.write(`BENCH_RESULT ${JSON.stringify({ ms, maxRSS: process.resourceUsage().maxRSS * 1024 })}\n`)
