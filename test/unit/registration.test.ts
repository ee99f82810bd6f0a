// Who may register a node and change its addresses (src/node/registration.ts): the
// API registers new nodes and repeats, never moves a registered one; a forwarded
// nodeJoined is proposed only when its sender is the node it names.
import t from 'tap';
import { encodeEnvelope, type Command, type NodeInfo } from '../../src/state/commands.js';
import type { NodeState } from '../../src/state/records.js';
import { addressProblem, admitForwarded, apiRegistration } from '../../src/node/registration.js';

function info(id: string, api = '10.0.0.2:7701', peer = '10.0.0.2:7801'): NodeInfo {
  return { id, api, peer, slots: 4, memoryMB: 1024, versions: { docker: 'fake', criu: 'unknown', kernel: '6' } };
}

function record(id: string, state: NodeState, api = '10.0.0.2:7701', peer = '10.0.0.2:7801') {
  return { id, state, api, peer };
}

function envelope(cmd: Command): Uint8Array {
  return encodeEnvelope({ v: 1, clientId: 'gw-n2-abc', requestId: 1, at: 0, cmd });
}

t.test('the API: a new id or one that left is proposed; the same addresses again change nothing', async (t) => {
  t.same(apiRegistration(undefined, info('n4')), { action: 'propose' }, 'a new node');
  t.same(apiRegistration(record('n4', 'left'), info('n4', '10.0.0.9:1', '10.0.0.9:2')), { action: 'propose' }, 'a node that left comes back, anywhere');
  for (const state of ['alive', 'suspect', 'lost'] as const) {
    t.same(apiRegistration(record('n2', state), info('n2')), { action: 'unchanged' }, `${state}, same addresses: a retried join`);
  }
});

t.test('the API: another address for a registered node is NODE_EXISTS, with what to do', async (t) => {
  for (const state of ['alive', 'suspect', 'lost'] as const) {
    for (const [what, api, peer] of [
      ['api', '10.6.6.6:7701', '10.0.0.2:7801'],
      ['peer', '10.0.0.2:7701', '10.6.6.6:7801'],
    ] as const) {
      const d = apiRegistration(record('n2', state), info('n2', api, peer));
      t.match(d, { action: 'refuse', status: 409, code: 'NODE_EXISTS' }, `${state}, another ${what}: refused`);
      if (d.action === 'refuse') t.match(d.message, /already registered .*restarts on new ones with its data folder.*DELETE \/v1\/cluster\/nodes\/n2/);
    }
  }
});

t.test('addresses must be host:port', async (t) => {
  t.equal(addressProblem(info('n4')), null);
  t.equal(addressProblem(info('n4', '[::1]:7701', 'box.example:7801')), null, 'IPv6 in brackets, host names');
  for (const [api, peer, field] of [
    ['no-port', '10.0.0.2:7801', /^api:/],
    ['10.0.0.2:7701', 'http://10.0.0.2:7801', /^peer:/],
    ['10.0.0.2:7701', '10.0.0.2:0', /^peer:/],
    ['10.0.0.2:7701', '', /^peer:/],
  ] as const) {
    t.match(addressProblem(info('n4', api, peer)), field, `${api} / ${peer}`);
    t.match(apiRegistration(undefined, info('n4', api, peer)), { action: 'refuse', status: 400, code: 'INVALID_ADDRESS' });
  }
});

t.test('forwarded: a nodeJoined only from the node it names, other commands as they are', async (t) => {
  t.equal(admitForwarded('n2', envelope({ type: 'nodeJoined', node: info('n2', '10.0.0.7:7701', '10.0.0.7:7801') })), null, 'a node moves itself');
  t.match(admitForwarded('n3', envelope({ type: 'nodeJoined', node: info('n2', '10.6.6.6:7701', '10.6.6.6:7801') })), /nodeJoined for n2 forwarded by n3: a node registers only itself/);
  t.match(admitForwarded('n2', envelope({ type: 'nodeJoined', node: info('n2', 'junk', '10.0.0.7:7801') })), /^api:/, 'its own, with an address that is not host:port');
  t.equal(admitForwarded('n3', envelope({ type: 'nodeLeft', node: 'n3' })), null, 'other commands are not this rule\'s business');
  t.equal(admitForwarded('n3', envelope({ type: 'cancelJob', jobId: 'j-1' })), null);
  t.match(admitForwarded('n3', new Uint8Array([0xc1])), /not a command/, 'bytes that are no command');
});
