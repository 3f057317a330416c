/**
 * The JSON the console receives: the operator API's shapes (docs/api.md) as the live channel pushes them.
 * The console is a separate program from the coordinator, so it states what it reads here; fields the
 * coordinator may not send yet are optional.
 */

export type RunStatus = 'created' | 'running' | 'paused' | 'stopped' | 'completed' | 'failed';

/** Why a run is where it is (its latest move to failed, stopped or paused). */
export interface RunReason {
  message: string;
  phase: string;
  round: number;
  code?: string;
}

/** The active run's progress. */
export interface RunProgress {
  runId: string;
  phase: string;
  round: number;
  rounds: number;
  received: number;
  expected: number;
  readyClients: number;
  minClients: number;
}

/** A run in the runs list. */
export interface RunListItem {
  id: string;
  status: RunStatus;
  createdAt?: string;
  updatedAt?: string;
  roundsDone: number;
  rounds: number;
  live?: RunProgress;
  reason?: RunReason;
}

/** What the coordinator records about one round. */
export interface RoundRecord {
  round: number;
  status: 'aggregated' | 'no-quorum' | 'kept';
  selected: number;
  accepted: number;
  rejected: number;
  excluded?: number;
  failed: number;
  trainLoss: number | null;
  valLoss: number | null;
  valAccuracy: number | null;
  evalClients: number;
  bytesIn: number;
  bytesOut: number;
  seconds: number;
  modelVersion: number;
  epsilon?: number;
}

/** Which sites a round took updates from and which it refused, with why. */
export interface RoundSites {
  round: number;
  participants: string[];
  rejected: Array<{ clientId: string; reason: string; message: string }>;
}

/** A site's last state in a run. */
export interface SiteState {
  client: string;
  state: string;
  round?: number;
  message?: string;
  at: string;
}

/** The latest round's privacy in a run with record-level DP. */
export interface RoundPrivacy {
  round: number;
  sites: Array<{ client: string; epsilon: number; delta: number; budget?: number }>;
  refused: Array<{ client: string; message: string; epsilon?: number; delta?: number; budget?: number }>;
}

/** A run as the console shows it: the API's RunView plus each round's sites. */
export interface RunView {
  id: string;
  status: RunStatus;
  createdAt?: string;
  updatedAt?: string;
  config?: { rounds?: number; minClients?: number; privacy?: { mode?: string }; strategy?: { name?: string }; [key: string]: unknown };
  rounds: RoundRecord[];
  live?: RunProgress;
  exclusions?: Array<{ type: string; round: number; client: string; reason: string; message: string }>;
  privacy?: RoundPrivacy;
  reason?: RunReason;
  sites?: SiteState[];
  roundSites?: RoundSites[];
}

/** A registered or connected site. */
export interface ClientView {
  name: string;
  registered: boolean;
  revoked: boolean;
  createdAt?: string;
  lastSeen?: string;
  connected: boolean;
  ready?: { runId: string; numTrain: number; numVal: number; labels?: string[] };
}

/** A site's connection event, as the live channel pushes it. */
export interface SiteEvent {
  client: string;
  kind: 'connected' | 'ready' | 'disconnected';
  reason?: string;
  runId?: string;
  phase?: string;
  round?: number;
  at: string;
}

/** `operator`: the serve console, with actions; `read-only`: a one-run coordinator's page. */
export type ConsoleMode = 'operator' | 'read-only';
