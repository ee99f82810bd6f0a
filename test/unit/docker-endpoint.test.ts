import t from 'tap';
import { dockerOptions } from '../../src/worker/docker-endpoint.js';

t.test('a unix socket url becomes a socket path', async (t) => {
  t.same(dockerOptions('unix:///var/run/docker.sock'), { socketPath: '/var/run/docker.sock' });
});

t.test('a tcp url becomes host and port over plain http', async (t) => {
  t.same(dockerOptions('tcp://10.0.0.2:2376'), { host: '10.0.0.2', port: 2376, protocol: 'http' });
});

t.test('a relative socket path or another scheme is refused with the url in the message', async (t) => {
  t.throws(() => dockerOptions('unix://docker.sock'), /unix:\/\/docker\.sock/);
  t.throws(() => dockerOptions('ftp://host'), /expected unix/);
});
