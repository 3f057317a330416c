import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, FtlError, runProgram } from '@ftl/shared';
import { createStudyProgress, summaryMarkdown, writeStudy, type StudyReport } from './report/index.js';
import { SIM_HELP, simConfigFromArgs, simFlagOptions } from './sim/config.js';
import { runStudy } from './sim/study.js';

/** A file name from a study's title: `Transfer vs scratch` → `transfer-vs-scratch`. */
function slug(title: string): string {
  return (
    title
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '') || 'study'
  );
}

const HELP = `${SIM_HELP}
Output:
  --from FILE              write the report again from a study.json, without running anything
`;

runProgram({ help: HELP, flags: { ...simFlagOptions(), from: { type: 'string' } } }, async (flags) => {
  if (typeof flags['from'] === 'string') {
    const file = flags['from'];
    let saved: StudyReport;
    try {
      saved = JSON.parse(await readFile(file, 'utf8')) as StudyReport;
    } catch (err) {
      throw new FtlError(ErrorCode.InvalidConfig, `cannot read study ${file}: ${(err as Error).message}`, { cause: err });
    }
    const dir = typeof flags['out'] === 'string' ? flags['out'] : join(file, '..');
    const { files } = await writeStudy(saved, dir);
    process.stdout.write(`${summaryMarkdown(saved)}\nwrote ${files.length} files to ${dir}\n`);
    return;
  }
  const study = simConfigFromArgs(flags);
  const config = study.base;
  const out = config.out ?? join('.ftl', 'sim', slug(config.title));
  // Runs of the rounds: one per method, seed and setting, and for the local baseline one per site.
  const runsOfRounds = study.settings.reduce((a, { config: c }) => {
    const perSeed = 1 + c.baselines.length + (c.baselines.includes('local') ? c.clients - 1 : 0);
    return a + perSeed * c.seeds.length * c.run.rounds;
  }, 0);
  const progress = createStudyProgress({ totalRounds: runsOfRounds });
  let report: StudyReport;
  try {
    report = await runStudy(study, {
      runStart: (e) =>
        progress.startRun({
          run: e.index,
          runs: e.total,
          method: e.method,
          seed: e.seed,
          rounds: e.rounds,
          clients: e.sites,
          ...(e.setting ? { setting: e.setting } : {}),
        }),
      round: (p) => progress.roundDone(p.round, { clientsDone: p.accepted, accuracy: p.heldOut ?? p.valAccuracy }),
      runEnd: () => progress.endRun(),
    });
  } finally {
    progress.stop();
  }
  const { files } = await writeStudy(report, out);
  process.stdout.write(`\n${summaryMarkdown(report)}\nreport: ${join(out, 'report.html')} (${files.length} files in ${out})\n`);
});
