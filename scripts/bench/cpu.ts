// CPU time of processes from /proc (Linux): user + system, in milliseconds.
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // _SC_CLK_TCK on Linux

export function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

export function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Host-wide steal time in percent over an interval (noisy neighbours on shared machines). */
export function stealSnapshot(): { steal: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const nums = line.trim().split(/\s+/).slice(1).map(Number);
  return { steal: nums[7] ?? 0, total: nums.reduce((a, b) => a + b, 0) };
}
