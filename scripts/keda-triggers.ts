/**
 * Prints the KEDA `triggers:` of the worker ScaledObject for QUEUE_PREFIX and QUEUE_SHARDS (from the
 * environment), one per shard's wait list: `QUEUE_SHARDS=6 REDIS_CLUSTER_NODES=redis-0:6379 npm run keda:triggers`.
 */
import { stringify } from 'yaml';
import { loadConfig } from '../packages/shared/src/config.ts';
import { kedaTriggers } from './lib/keda-triggers.ts';

const config = loadConfig(process.env);
const cluster = config.REDIS_CLUSTER_NODES.length > 0;
const address = cluster ? config.REDIS_CLUSTER_NODES.join(',') : new URL(config.REDIS_URL).host;
process.stdout.write(stringify({ triggers: kedaTriggers({ queuePrefix: config.QUEUE_PREFIX, shards: config.QUEUE_SHARDS, address, cluster }) }));
