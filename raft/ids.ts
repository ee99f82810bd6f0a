import type { NodeId } from './types.js';

/**
 * The one order of node ids in the core: by UTF-16 code units, as `Array.prototype.sort`
 * orders strings. Messages to several peers go out in this order and configurations
 * list their members in it, so every node (and every replay of a simulation) sees the
 * same sequence whatever order the members were added in.
 */
export function compareNodeIds(a: NodeId, b: NodeId): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The ids in `ids`, in the core's order. */
export function sortedIds(ids: Iterable<NodeId>): NodeId[] {
  return [...ids].sort(compareNodeIds);
}
