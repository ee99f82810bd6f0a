import Docker from 'dockerode';

export const DEFAULT_DOCKER_URL = 'unix:///var/run/docker.sock';

/** Parses `unix:///path/docker.sock` or `tcp://host:port` into dockerode options. */
export function dockerOptions(url: string): Docker.DockerOptions {
  if (url.startsWith('unix://')) {
    const socketPath = url.slice('unix://'.length);
    if (!socketPath.startsWith('/')) throw new Error(`docker url ${url}: the socket path must be absolute`);
    return { socketPath };
  }
  const parsed = new URL(url);
  if (parsed.protocol !== 'tcp:' && parsed.protocol !== 'http:') {
    throw new Error(`docker url ${url}: expected unix:///path or tcp://host:port`);
  }
  return { host: parsed.hostname, port: Number(parsed.port || 2375), protocol: 'http' };
}

export function connectDocker(url: string = DEFAULT_DOCKER_URL): Docker {
  return new Docker(dockerOptions(url));
}
