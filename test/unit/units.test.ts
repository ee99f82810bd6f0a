import t from 'tap';
import { formatSeconds, parseDurationSeconds, parseSizeMB } from '../../src/util/units.js';

t.test('durations in the forms users type', async (t) => {
  t.equal(parseDurationSeconds('90s'), 90);
  t.equal(parseDurationSeconds('1h30m'), 5400);
  t.equal(parseDurationSeconds('250ms'), 0.25);
  t.equal(parseDurationSeconds('333.33s'), 333.33);
  t.equal(parseDurationSeconds('45'), 45);
  t.throws(() => parseDurationSeconds('5 minutes'), /not a duration/);
  t.throws(() => parseDurationSeconds(''), /not a duration/);
  t.throws(() => parseDurationSeconds('10x'), /not a duration/);
});

t.test('sizes in MiB', async (t) => {
  t.equal(parseSizeMB('256m'), 256);
  t.equal(parseSizeMB('1g'), 1024);
  t.equal(parseSizeMB('512MiB'), 512);
  t.throws(() => parseSizeMB('lots'), /not a size/);
});

t.test('seconds format back compactly', async (t) => {
  t.equal(formatSeconds(42), '42s');
  t.equal(formatSeconds(90), '1m30s');
  t.equal(formatSeconds(7200), '2h');
});
