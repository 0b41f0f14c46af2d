// node paced_sets.mjs PORT DB RATE SECONDS PREFIX: SETs of PREFIX0,
// PREFIX1... into Redis database DB, RATE a second for SECONDS, sent every
// 5 ms in one pipeline.  bench_other_db.sh's stand-in for ended calls
// moved out of the calls' database as they end.
import Redis from 'ioredis';

const [port, db, rate, secs, prefix] = process.argv.slice(2);
const r = new Redis({ host: '127.0.0.1', port: +port, db: +db });
const total = Math.round(+rate * +secs);
const t0 = Date.now();
let n = 0;

await new Promise((done) => {
	const tick = setInterval(() => {
		const due = Math.min(total,
		    Math.floor((Date.now() - t0) * +rate / 1000));
		if (due > n) {
			const p = r.pipeline();
			for (; n < due; n++)
				p.set(prefix + n, 'x');
			p.exec();
		}
		if (n >= total) {
			clearInterval(tick);
			done();
		}
	}, 5);
});
await r.quit();
