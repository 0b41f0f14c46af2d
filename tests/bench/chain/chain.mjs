// The dispatch chain's Lua scripts, run by hand against a redis-server
// (redis_instructions.sh runs it under callgrind): N calls created as the
// gateway writes them (without its policy checks), then released, taken,
// claimed and finished as completed, RQ_CHAIN_BATCH calls per script run,
// by EVALSHA or, with RQ_CHAIN_MODE=fcall, as Redis functions wrapped as
// common/redis_sync.c's library_text() wraps them, or with
// RQ_CHAIN_MODE=module as ringq-redis.so's commands (the server must have
// loaded it), the create then as the gateway sends it there.  The scripts'
// Lua is in $RQ_CHAIN_DIR.  RQ_CHAIN_CREATE=full (module only): each create
// as a request with all the intake's checks makes it, an idempotency key,
// limits per second and per day, a number checked against the three
// do-not-call lists (the default, bare: none of them).
//   node chain.mjs PORT N
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { CREATE, gatewayCreate } from '../bullmq/ringq_create.mjs';
const require = createRequire(new URL('../bullmq/', import.meta.url).pathname);
const IORedis = require('ioredis');

const [, , port, nstr] = process.argv;
const N = Number(nstr);
const B = Number(process.env.RQ_CHAIN_BATCH || 500);
const MODE = process.env.RQ_CHAIN_MODE || 'evalsha';
const FN = MODE === 'fcall';
const MOD = MODE === 'module';
const FULL = process.env.RQ_CHAIN_CREATE === 'full';
if (FULL && !MOD)
	throw new Error('RQ_CHAIN_CREATE=full needs RQ_CHAIN_MODE=module');

// ringq.create for call k, as the gateway sends it (the idempotency
// key's name ends in its sha256 in hex, as the gateway's)
function create(k) {
	const idem = createHash('sha256').update(`k${k}`).digest('hex');
	return gatewayCreate(`c_${k}`, 'demo', 'sip:x@127.0.0.1', 'bench',
	    FULL ? { idem, business: 'acme', rps: 1000000,
	    rpd: 100000000,
	    number: `+1555010${String(k % 10000).padStart(4, '0')}` } : {});
}
const r = new IORedis({ host: '127.0.0.1', port: Number(port) });

const sha = { create: await r.script('LOAD', CREATE) };
for (const n of ['release', 'take', 'claim', 'finish']) {
	const src = readFileSync(`${process.env.RQ_CHAIN_DIR}/${n}.lua`, 'utf8');
	sha[n] = await r.script('LOAD', src);
	if (FN) {
		const m = '--[[ run ]]\n', i = src.indexOf(m);
		await r.call('FUNCTION', 'LOAD', 'REPLACE',
		    `#!lua name=cg_${n}\nlocal rq_library = redis\n` +
		    src.slice(0, i) +
		    `rq_library.register_function('cg_${n}', function(KEYS, ARGV)\n` +
		    src.slice(i + m.length) + '\nend)\n');
	}
}
const NATIVE = { release: 'release', take: 'take', claim: 'claim_batch',
    finish: 'finish_batch' };
const run = (n, ...a) => MOD ? r.call('ringq.' + NATIVE[n], ...a) :
    FN ? r.call('FCALL', 'cg_' + n, ...a) : r.evalsha(sha[n], ...a);

await r.flushall();
for (let i = 0; i < N; i += 1000) {
	const p = r.pipeline();
	for (let k = i; k < i + 1000 && k < N; k++)
		if (MOD)
			p.call(...create(k));
		else
			p.evalsha(sha.create, 4, `rq:job:c_${k}`,
			    'rq:calls:demo', 'rq:delayed', 'rq:events', `c_${k}`,
			    'demo', 'sip:x@127.0.0.1', 'bench');
	await p.exec();
}
const now = Date.now() + 1000;
while ((await run('release', 3, 'rq:delayed', 'rq:ready', 'rq:inflight',
    now, B, 'rq:job:'))[1] !== 0)
	;
const taken = [];
for (;;) {
	const res = await run('take', 3, 'rq:ready', 'rq:inflight',
	    'rq:hours', 30000, 'rq:job:', B) || [];	// none left: nil
	// eight elements per id (dispatcher/jobs.c, TAKE_SLOTS)
	for (let i = 0; i < res.length; i += 8)
		taken.push([res[i], String(res[i + 1])]);
	if (res.length < 8 * B)
		break;
}
if (taken.length !== N)
	throw new Error(`taken ${taken.length} of ${N}`);
for (let i = 0; i < N; i += B) {
	const part = taken.slice(i, i + B);
	const claim = await run('claim', 3, 'rq:inflight', 'rq:oncall:tel1',
	    'rq:nodes', 'tel1', 'rq:job:', ...part.flat());
	if (claim.some(x => x !== 1))
		throw new Error('claim ' + claim);
	const fin = await run('finish', 2, 'rq:oncall:tel1', 'rq:delayed',
	    'rq:job:', ...part.flatMap(([id, att]) => [id, att, 'tel1',
	    'completed', '', '200', '1', '2', '1000', '', '1', '']));
	// code, status per finish (common/lifecycle.c, finish_batch_src)
	if (fin.length !== 2 * part.length ||
	    fin.some((x, k) => k % 2 === 0 && x !== 1))
		throw new Error('finish ' + JSON.stringify(fin.slice(0, 2)));
}
console.log(`calls=${N} batch=${B} mode=${MODE}`);
await r.quit();
