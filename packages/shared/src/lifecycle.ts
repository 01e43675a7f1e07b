import type { Logger } from './logging.ts';

export interface ShutdownStep {
  name: string;
  run: () => Promise<unknown>;
}

/**
 * Runs the steps in order (stop intake, drain, close clients), once: calling it again returns the same
 * promise. The whole sequence is raced against `timeoutMs`; a step that fails is logged and the rest still run.
 */
export function createShutdown(steps: ShutdownStep[], logger: Logger, timeoutMs: number): () => Promise<boolean> {
  let running: Promise<boolean> | undefined;
  return () => {
    running ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const all = (async () => {
        for (const step of steps) {
          try {
            await step.run();
          } catch (err) {
            logger.warn({ step: step.name, message: (err as Error).message }, 'shutdown step failed');
          }
        }
        return true;
      })();
      const timeout = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
        timer.unref();
      });
      const clean = await Promise.race([all, timeout]);
      clearTimeout(timer);
      return clean;
    })();
    return running;
  };
}
