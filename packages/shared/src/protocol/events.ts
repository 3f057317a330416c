import type {
  Ack, ClassSumsInstruction, ClassSumsResult, ClientFailure, EvaluateInstruction, Goodbye, EvaluateResult, FitInstruction, FitResult, PersonalizeInstruction,
  PersonalizeResult, Ready, RunEnd, Welcome,
} from './messages.js';

/**
 * Events the coordinator emits to a client. Typed for `new Server<ClientToServerEvents, ServerToClientEvents>()`
 * and `io(): Socket<ServerToClientEvents, ClientToServerEvents>`.
 */
export interface ServerToClientEvents {
  welcome: (message: Welcome) => void;
  fit: (message: FitInstruction) => void;
  evaluate: (message: EvaluateInstruction) => void;
  personalize: (message: PersonalizeInstruction) => void;
  'class-sums': (message: ClassSumsInstruction) => void;
  'run-end': (message: RunEnd) => void;
  goodbye: (message: Goodbye) => void;
}

/**
 * Events a client emits to the coordinator. The coordinator receives every payload as `unknown` and
 * runs it through the matching `parse*` validator before use; the acknowledgement says accepted or why not.
 */
export interface ClientToServerEvents {
  ready: (message: Ready, ack: (ack: Ack) => void) => void;
  'fit-result': (message: FitResult, ack: (ack: Ack) => void) => void;
  'evaluate-result': (message: EvaluateResult, ack: (ack: Ack) => void) => void;
  'personalize-result': (message: PersonalizeResult, ack: (ack: Ack) => void) => void;
  'class-sums-result': (message: ClassSumsResult, ack: (ack: Ack) => void) => void;
  failure: (message: ClientFailure) => void;
}
