// A ModelCanary's phase, as the controller exports it: one series per phase, 1 for the current one.
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { valueMappings } from './panels.ts';

export const PHASES = ['Pending', 'Progressing', 'Paused', 'Succeeded', 'RolledBack', 'Failed'] as const;
export type Phase = (typeof PHASES)[number];

const PHASE_COLORS: Record<Phase, string> = {
  Pending: 'text',
  Progressing: 'blue',
  Paused: 'yellow',
  Succeeded: 'green',
  RolledBack: 'orange',
  Failed: 'red',
};

/**
 * The current phase as one number (1 Pending … 6 Failed), so that a state timeline draws one
 * row and a stat one value. Each term is absent unless its phase is current, and `or` keeps
 * the first present: the phases are exclusive, so exactly one term remains.
 */
export function phaseCode(selector: string): string {
  return PHASES.map((phase, index) => `max(modelcanary_phase{${selector},phase="${phase}"} == 1) * ${index + 1}`).join('\nor ');
}

/** Mappings for `phaseCode`: its number back to the phase's name and colour. */
export function phaseCodeMappings(): dashboard.ValueMapping[] {
  return valueMappings(PHASES.map((phase, index) => ({ value: String(index + 1), text: phase, color: PHASE_COLORS[phase] })));
}

/** Mappings for a `phase` label shown as text (the fleet table): colour only. */
export function phaseNameMappings(): dashboard.ValueMapping[] {
  return valueMappings(PHASES.map((phase) => ({ value: phase, text: phase, color: PHASE_COLORS[phase] })));
}
