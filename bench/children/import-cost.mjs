// What loading one module costs a build: Vite is loaded first (a build has it already),
// then the module. argv: <module specifier>. Prints BENCH_RESULT { ms, rssBytes }.
await import('vite')
const rss = process.memoryUsage().rss
const started = performance.now()
await import(process.argv[2])
const ms = performance.now() - started
process.stdout.write(`BENCH_RESULT ${JSON.stringify({ ms, rssBytes: process.memoryUsage().rss - rss })}\n`)
