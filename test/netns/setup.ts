// vitest globalSetup of the netns project: refuses to run anywhere but an isolated namespace.
import { prepareLoopbackRanges } from './namespace.ts';

export default function setup(): void {
  prepareLoopbackRanges();
}
