// OpenTelemetry from the cache's diagnostics channels (issue #19): a span per request, hit or not, that
// carries what the cache did; and the hit ratio, the bytes stored, store errors and evictions as metrics.
// The SDK's in-memory exporters stand in for a collector, so that this example can check what it exported.
// The package itself depends on nothing of OpenTelemetry: this is all subscriber code.
import assert from 'node:assert/strict'
import diagnosticsChannel from 'node:diagnostics_channel'
import { createServer } from 'node:http'
import { SpanStatusCode } from '@opentelemetry/api'
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { request } from 'undici'
import { CachingAgent, MemoryStore } from 'undici-http-cache'

const spanExporter = new InMemorySpanExporter()
const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] }).getTracer('undici-http-cache')
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
const metricReader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 })
const meter = new MeterProvider({ readers: [metricReader] }).getMeter('undici-http-cache')

// A span per request: begun as the cache takes the request, ended once its response has ended.
const spans = new WeakMap()
diagnosticsChannel.tracingChannel('undici-http-cache:request').subscribe({
  start(trace) {
    const { method, origin, path } = trace.request
    spans.set(trace, tracer.startSpan(method, { attributes: { 'http.request.method': method, 'url.full': origin + path } }))
  },
  end() {},
  asyncStart() {},
  asyncEnd(trace) {
    const span = spans.get(trace)
    if (trace.statusCode !== undefined) span.setAttribute('http.response.status_code', trace.statusCode)
    if (trace.status !== undefined) span.setAttribute('http.cache.status', trace.status)
    span.end()
  },
  error(trace) {
    spans.get(trace).setStatus({ code: SpanStatusCode.ERROR, message: trace.error.message })
  },
})

// Metrics: store errors counted from the error channel; the rest read from cache.stats when collected.
const storeErrors = meter.createCounter('http.cache.store.errors', { description: 'Store calls that failed; each request went on without the cache' })
diagnosticsChannel.subscribe('undici-http-cache:error', (message) => storeErrors.add(1, { 'http.cache.operation': message.operation }))

/** A MemoryStore that fails its first read, as a store on the network might. */
class HiccupingStore extends MemoryStore {
  #failed = false
  get(key) {
    if (this.#failed) return super.get(key)
    this.#failed = true
    throw new Error('the store hiccupped')
  }
}
// Room for two of the origin's responses: a third evicts the least recently used.
const agent = new CachingAgent({ store: new HiccupingStore({ maxSize: 16 * 1024 }) })
meter.createObservableGauge('http.cache.hit_ratio', { description: 'cache.stats.hitRatio' }).addCallback((result) => result.observe(agent.cache.stats.hitRatio))
meter.createObservableCounter('http.cache.stored', { unit: 'By', description: 'cache.stats.bytesStored' }).addCallback((result) => result.observe(agent.cache.stats.bytesStored))
meter.createObservableCounter('http.cache.evictions', { description: 'cache.stats.evicted' }).addCallback((result) => result.observe(agent.cache.stats.evicted))

const origin = createServer((_request, response) => response.writeHead(200, { 'cache-control': 'max-age=60' }).end('x'.repeat(4096)))
await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${origin.address().port}`
for (const path of ['/a', '/a', '/a', '/b', '/c', '/a']) await (await request(base + path, { dispatcher: agent })).body.text()

await metricReader.forceFlush()
const exported = new Map(metricExporter.getMetrics().at(-1).scopeMetrics.flatMap((scope) => scope.metrics).map((metric) => [metric.descriptor.name, metric.dataPoints]))
const value = (name) => exported.get(name)[0].value
console.log('spans:', spanExporter.getFinishedSpans().map((span) => `${span.attributes['url.full'].slice(base.length)} ${span.attributes['http.cache.status']}`).join(', '))
console.log('hit ratio:', value('http.cache.hit_ratio'), 'bytes stored:', value('http.cache.stored'), 'evictions:', value('http.cache.evictions'), 'store errors:', value('http.cache.store.errors'))

// The first read failed (a miss, whose response was stored all the same), two hits, then /b and /c pushed
// /a out of the store: a miss again.
assert.deepEqual(spanExporter.getFinishedSpans().map((span) => span.attributes['http.cache.status']), ['miss', 'hit', 'hit', 'miss', 'miss', 'miss'])
assert.equal(value('http.cache.hit_ratio'), 2 / 6)
assert.ok(value('http.cache.stored') > 5 * 4096)
assert.ok(value('http.cache.evictions') >= 1)
assert.deepEqual(exported.get('http.cache.store.errors').map((point) => [point.attributes['http.cache.operation'], point.value]), [['get', 1]])

await agent.close()
origin.close()
