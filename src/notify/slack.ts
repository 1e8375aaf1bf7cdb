// Notifications as Slack messages: Block Kit for an incoming webhook, and what Slack's answers
// mean. Everything a message shows that came from a user (model, versions, names, metrics,
// summary, reason) is escaped, so that a model called <!channel> pings nobody and a reason
// cannot forge a link; and every part is cut to fit Slack's limits, since Slack refuses a
// whole message (400 invalid_blocks) for one field too long.
//
// Limits, from Slack's Block Kit reference: a message holds at most 50 blocks; a header's
// plain_text at most 150 characters; a text object 1 to 3,000 (a section's text included); a
// section's fields at most 10, of 2,000 each; a context block at most 10 elements. Slack
// truncates a message's top-level text beyond 40,000 characters.

import type { MetricLine, Notification, NotificationKind, Severity } from '../api/status.ts';
import { dashboardUrl, kubectlCommand, type Delivery, type Links, type Notifier } from './notifier.ts';
import { isTransient, JsonEndpoint, type PostResult } from './http.ts';

export const SLACK_LIMITS = {
  blocks: 50,
  headerText: 150,
  text: 3000,
  fields: 10,
  fieldText: 2000,
  contextElements: 10,
  blockId: 255,
  topLevelText: 40_000,
} as const;

export interface PlainText {
  type: 'plain_text';
  text: string;
}

export interface Mrkdwn {
  type: 'mrkdwn';
  text: string;
  /** Set: Slack links no bare URL or #channel in the text; our own <url|label> links still work. */
  verbatim: true;
}

export type Block = { type: 'header'; text: PlainText } | { type: 'section'; text: Mrkdwn } | { type: 'context'; elements: Mrkdwn[] };

/** What an incoming webhook is sent. `link_names` is never set: names in the text never become mentions. */
export interface SlackMessage {
  /** The fallback shown in notifications and by clients without Block Kit: the header and the summary. */
  text: string;
  blocks: Block[];
}

/** Slack's control characters as entities: the only escaping mrkdwn has (https://api.slack.com/reference/surfaces/formatting#escaping). */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const KINDS: Record<NotificationKind, { emoji: (severity: Severity) => string; says: (n: Notification) => string }> = {
  started: { emoji: () => '🚀', says: () => 'canary started' },
  retried: { emoji: () => '🔁', says: () => 'rollout retried' },
  canaryReplaced: { emoji: () => '🔄', says: () => 'replaces the canary' },
  advanced: { emoji: () => '⏩', says: (n) => `advanced to ${n.weight} %` },
  promoted: { emoji: () => '✅', says: () => 'promoted' },
  rolledBack: { emoji: () => '⛔', says: () => 'rolled back' },
  noEvidence: { emoji: (s) => (s === 'error' ? '🛑' : '❔'), says: () => 'held without evidence' },
  held: { emoji: (s) => (s === 'error' ? '🛑' : '⚠️'), says: () => 'held' },
  invalid: { emoji: () => '❌', says: () => 'held: invalid spec' },
  paused: { emoji: () => '⏸', says: () => 'paused' },
  resumed: { emoji: () => '▶️', says: () => 'resumed' },
  gated: { emoji: () => '🚦', says: () => 'waits at a gate' },
  aborted: { emoji: () => '⏹', says: () => 'aborted' },
};

/** The Block Kit message for a notification; every part within Slack's limits. */
export function slackMessage(n: Notification, links?: Links): SlackMessage {
  const kind = KINDS[n.kind];
  const emoji = kind.emoji(n.severity);
  const says = kind.says(n);
  const subject = oneLine(`${n.model} ${n.canaryVersion}`);
  // The model and version give way, never what happened to them.
  const room = SLACK_LIMITS.headerText - `${emoji}  ${says}`.length;
  const header = `${emoji} ${clip(subject, room)} ${says}`;

  const blocks: Block[] = [{ type: 'header', text: { type: 'plain_text', text: header } }];
  const summary = oneLine(n.summary);
  const reason = n.reason.trim();
  if (summary !== '' || reason !== '') {
    const bold = summary === '' ? '' : `*${clip(summary, 1000)}*`;
    const rest = SLACK_LIMITS.text - bold.length - 1;
    blocks.push(section([bold, reason === '' ? '' : clip(reason, rest)].filter((part) => part !== '').join('\n')));
  }
  const table = metricTable(n.metrics);
  if (table !== undefined) blocks.push(section(table));
  blocks.push(
    context([
      `\`${clip(`${n.namespace}/${n.name}`, 400)}\``,
      `model ${clip(n.model, 400)}`,
      `stable ${clip(n.stableVersion, 200)} → canary ${clip(n.canaryVersion, 200)}`,
      `step ${n.step} of ${n.steps}`,
      `canary at ${n.weight} %`,
      `phase ${n.phase}`,
    ]),
  );
  const dashboard = dashboardUrl(links, n);
  blocks.push(context([...(dashboard === undefined ? [] : [`<${linkTarget(dashboard)}|Dashboard>`]), `\`${clip(kubectlCommand(n), 1000)}\``]));
  return { text: clip(`${emoji} ${subject} ${says}${summary === '' ? '' : `: ${summary}`}`, SLACK_LIMITS.text), blocks };
}

function section(text: string): Block {
  return { type: 'section', text: { type: 'mrkdwn', text, verbatim: true } };
}

function context(texts: string[]): Block {
  return { type: 'context', elements: texts.map((text) => ({ type: 'mrkdwn', text, verbatim: true })) };
}

/**
 * `raw` escaped and cut to at most `max` characters, ending in "…" when cut. Cut before
 * escaping, a character at a time, so that no entity (&amp;) or surrogate pair is split.
 */
function clip(raw: string, max: number): string {
  const escaped = escapeMrkdwn(raw);
  if (escaped.length <= max) return escaped;
  let kept = '';
  for (const char of raw) {
    const piece = escapeMrkdwn(char);
    if (kept.length + piece.length > max - 1) break;
    kept += piece;
  }
  return `${kept.trimEnd()}…`;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** A URL inside <url|label>: the characters that would end the link are percent-encoded, & escaped. */
function linkTarget(url: string): string {
  return url.replace(/[<>|\s]/g, (c) => encodeURIComponent(c)).replace(/&/g, '&amp;');
}

// ── The metrics table ───────────────────────────────────────────────────────────────────

const COLUMNS = [
  { title: 'metric', max: 28, of: (m: MetricLine) => m.name },
  { title: 'stable', max: 14, of: (m: MetricLine) => m.stable },
  { title: 'canary', max: 14, of: (m: MetricLine) => m.canary },
  { title: 'bound', max: 36, of: (m: MetricLine) => m.bound },
  { title: 'verdict', max: 12, of: (m: MetricLine) => m.verdict },
] as const;

/**
 * The metrics as an aligned, monospace table in one section: as many rows as fit in its 3,000
 * characters, then "… and K more". Widths are counted before escaping, as Slack shows
 * entities as one character.
 */
function metricTable(metrics: readonly MetricLine[]): string | undefined {
  if (metrics.length === 0) return undefined;
  const rows = metrics.map((m) => COLUMNS.map((column) => cell(column.of(m), column.max)));
  const widths = COLUMNS.map((column, i) => Math.max(length(column.title), ...rows.map((row) => length(row[i] ?? ''))));
  const line = (cells: readonly string[]): string =>
    escapeMrkdwn(
      cells
        .map((text, i) => text + ' '.repeat((widths[i] ?? 0) - length(text)))
        .join('  ')
        .trimEnd(),
    );
  const more = (count: number): string => (count === 0 ? '' : `\n_… and ${count} more_`);
  const close = '\n```';
  let text = `\`\`\`\n${line(COLUMNS.map((c) => c.title))}\n${line(widths.map((w) => '-'.repeat(w)))}`;
  let shown = 0;
  for (const row of rows) {
    const next = `\n${line(row)}`;
    if (text.length + next.length + close.length + more(rows.length - shown - 1).length > SLACK_LIMITS.text) break;
    text += next;
    shown++;
  }
  return `${text}${close}${more(rows.length - shown)}`;
}

/** One cell: on one line, no backtick (it would end the code block), at most `max` characters. */
function cell(text: string, max: number): string {
  const flat = oneLine(text).replace(/`/g, "'");
  const chars = Array.from(flat);
  return chars.length <= max ? flat : `${chars.slice(0, max - 1).join('')}…`;
}

function length(text: string): number {
  return Array.from(text).length;
}

// ── Checking a message against the limits ───────────────────────────────────────────────

/** Every way `message` (parsed JSON) breaks Block Kit's limits or lacks a fallback text; empty when Slack would take it. */
export function checkBlockKitLimits(message: unknown): string[] {
  if (!isRecord(message)) return ['the message is not a JSON object'];
  const problems: string[] = [];
  if (typeof message.text !== 'string' || message.text.trim() === '') problems.push('text: a message needs a fallback text');
  else if (message.text.length > SLACK_LIMITS.topLevelText) problems.push(`text: ${message.text.length} characters, more than ${SLACK_LIMITS.topLevelText}`);
  if (message.blocks === undefined) return problems;
  if (!Array.isArray(message.blocks)) return [...problems, 'blocks: not an array'];
  if (message.blocks.length > SLACK_LIMITS.blocks) problems.push(`blocks: ${message.blocks.length} blocks, more than ${SLACK_LIMITS.blocks}`);
  for (const [i, block] of (message.blocks as unknown[]).entries()) problems.push(...checkBlock(block, `blocks[${i}]`));
  return problems;
}

function checkBlock(block: unknown, at: string): string[] {
  if (!isRecord(block)) return [`${at}: not an object`];
  const problems: string[] = [];
  if (block.block_id !== undefined && (typeof block.block_id !== 'string' || block.block_id.length > SLACK_LIMITS.blockId)) problems.push(`${at}.block_id: more than ${SLACK_LIMITS.blockId} characters`);
  switch (block.type) {
    case 'header':
      problems.push(...checkText(block.text, `${at}.text`, SLACK_LIMITS.headerText, ['plain_text']));
      break;
    case 'section':
      if (block.text === undefined && block.fields === undefined) problems.push(`${at}: a section needs text or fields`);
      if (block.text !== undefined) problems.push(...checkText(block.text, `${at}.text`, SLACK_LIMITS.text));
      if (block.fields !== undefined) {
        if (!Array.isArray(block.fields)) problems.push(`${at}.fields: not an array`);
        else {
          if (block.fields.length > SLACK_LIMITS.fields) problems.push(`${at}.fields: ${block.fields.length} fields, more than ${SLACK_LIMITS.fields}`);
          for (const [i, field] of (block.fields as unknown[]).entries()) problems.push(...checkText(field, `${at}.fields[${i}]`, SLACK_LIMITS.fieldText));
        }
      }
      break;
    case 'context':
      if (!Array.isArray(block.elements) || block.elements.length === 0) problems.push(`${at}.elements: a context needs 1 to ${SLACK_LIMITS.contextElements} elements`);
      else {
        if (block.elements.length > SLACK_LIMITS.contextElements) problems.push(`${at}.elements: ${block.elements.length} elements, more than ${SLACK_LIMITS.contextElements}`);
        for (const [i, element] of (block.elements as unknown[]).entries()) problems.push(...checkText(element, `${at}.elements[${i}]`, SLACK_LIMITS.text));
      }
      break;
    case 'divider':
      break;
    default:
      problems.push(`${at}.type: ${JSON.stringify(block.type)} is not a block this check knows (header, section, context, divider)`);
  }
  return problems;
}

function checkText(text: unknown, at: string, max: number, types: readonly string[] = ['plain_text', 'mrkdwn']): string[] {
  if (!isRecord(text)) return [`${at}: not a text object`];
  if (typeof text.type !== 'string' || !types.includes(text.type)) return [`${at}.type: must be ${types.join(' or ')}`];
  if (typeof text.text !== 'string' || text.text.length === 0) return [`${at}.text: 1 to ${max} characters`];
  if (text.text.length > max) return [`${at}.text: ${text.text.length} characters, more than ${max}`];
  return [];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ── Sending ─────────────────────────────────────────────────────────────────────────────

export interface SlackNotifierOptions {
  /** The incoming webhook (https://hooks.slack.com/services/...): a secret, never printed. */
  url: string;
  links?: Links | undefined;
  timeoutMs?: number | undefined;
}

export class SlackNotifier implements Notifier {
  private readonly endpoint: JsonEndpoint;
  private readonly links: Links | undefined;

  constructor(options: SlackNotifierOptions) {
    this.endpoint = new JsonEndpoint(options.url, 'Slack', options.timeoutMs);
    this.links = options.links;
  }

  async send(notification: Notification, signal: AbortSignal): Promise<Delivery> {
    return judgeSlackAnswer(await this.endpoint.post(slackMessage(notification, this.links), signal));
  }
}

const OUR_BUG = 'Slack could not take the message modelcanary built; this is a bug in modelcanary, please report it';
const NEW_WEBHOOK = 'create a new incoming webhook and update the Secret that holds it';
const FIXES: Record<string, string> = {
  invalid_payload: OUR_BUG,
  invalid_blocks: OUR_BUG,
  invalid_blocks_format: OUR_BUG,
  no_text: OUR_BUG,
  msg_too_long: OUR_BUG,
  too_many_attachments: OUR_BUG,
  invalid_token: `the webhook was revoked or its Slack app removed; ${NEW_WEBHOOK}`,
  action_prohibited: `a workspace admin restricts what this webhook may post; ask them, or ${NEW_WEBHOOK}`,
  posting_to_general_channel_denied: `only admins may post in the webhook's channel; ${NEW_WEBHOOK} for another channel`,
  channel_not_found: `the webhook's channel was deleted; ${NEW_WEBHOOK}`,
  channel_is_archived: `the webhook's channel is archived; unarchive it, or ${NEW_WEBHOOK} for another channel`,
  no_service: `the webhook was removed or disabled; ${NEW_WEBHOOK}`,
  no_active_hooks: `the webhook was removed or disabled; ${NEW_WEBHOOK}`,
  no_team: `the webhook's workspace no longer exists; ${NEW_WEBHOOK}`,
  team_disabled: `the webhook's workspace is disabled; ${NEW_WEBHOOK}`,
};

function fixFor(status: number, token: string | undefined): string {
  const known = token === undefined ? undefined : FIXES[token];
  if (known !== undefined) return known;
  if (status >= 300 && status < 400) return 'a redirect, which is not followed; the Secret must hold the incoming webhook URL itself (https://hooks.slack.com/services/...)';
  if (status === 400) return OUR_BUG;
  if (status === 401 || status === 403) return `Slack refused the webhook; ${NEW_WEBHOOK}`;
  if (status === 404) return `Slack knows no such webhook (removed, or the URL in the Secret is wrong); ${NEW_WEBHOOK}`;
  if (status === 410) return `the webhook's channel is gone; ${NEW_WEBHOOK}`;
  return `Slack refused the message; check the webhook URL in the Secret`;
}

function judgeSlackAnswer(result: PostResult): Delivery {
  if (!result.answered) return { ok: false, retry: result.retry, problem: result.problem };
  const { status, retryAfterMs } = result;
  // Slack answers "ok"; any 2xx means the message was taken, and sending it again would repeat it.
  if (status >= 200 && status < 300) return { ok: true };
  // Slack's errors are a short token; anything else in a body (a proxy's page, say) is not repeated.
  const body = result.body.trim();
  const token = /^[a-z_]{1,64}$/.test(body) ? body : undefined;
  const answered = `Slack answered ${status}${token === undefined ? '' : ` ${token}`}`;
  if (status === 429) return { ok: false, retry: 'later', problem: `${answered}: too many messages for this webhook`, retryAfterMs };
  if (isTransient(status)) return { ok: false, retry: 'later', problem: answered, retryAfterMs };
  return { ok: false, retry: 'never', problem: `${answered}: ${fixFor(status, token)}` };
}
