// Test processes talk HTTPS to secure-mode clusters whose CA is made at their start.
// Node's global fetch takes no CA option; it does use undici's global dispatcher, so
// trusting a cluster means a new dispatcher that trusts every CA seen so far (clusters
// of one test file come and go; their CAs stay trusted for the rest of the process).
import { rootCertificates } from 'node:tls';
import { Agent, setGlobalDispatcher } from 'undici';

const trusted = new Set<string>();

/** Makes fetch in this process trust `caPem` (as well as the CAs trusted before). */
export function trustCa(caPem: string): void {
  if (trusted.has(caPem)) return;
  trusted.add(caPem);
  setGlobalDispatcher(new Agent({ connect: { ca: [...rootCertificates, ...trusted] } }));
}

export function trustedCas(): string[] {
  return [...trusted];
}
