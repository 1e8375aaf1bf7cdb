// Leader election on a coordination.k8s.io/v1 Lease, as Kubernetes controllers do it: the
// holder renews every retry period; a candidate takes the lease once its renewTime is older
// than the lease duration; a leader that cannot renew within the renew deadline stops leading.
// Every write carries the lease's resourceVersion, so two candidates can never both win.

import { ApiException, CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';

export interface LeaderElectionConfig {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
}

export const DEFAULT_TIMING = { leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 } as const;

export interface LeadershipCallbacks {
  started(): Promise<void>;
  /** Leadership was lost (renewal failed past the deadline); the caller must stop writing. */
  lost(): void;
  /** A read or write of the Lease failed (not a lost race): for the log. */
  failed?(error: unknown): void;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly config: LeaderElectionConfig;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private leading = false;
  private lastRenewed = 0;
  private stopped = false;

  constructor(kubeConfig: KubeConfig, config: LeaderElectionConfig) {
    this.api = kubeConfig.makeApiClient(CoordinationV1Api);
    this.config = config;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Campaigns until stopped: calls started() on winning, lost() if the lease slips away. */
  run(callbacks: LeadershipCallbacks): void {
    const tick = async (): Promise<void> => {
      if (this.stopped) return;
      const held = await this.tryAcquireOrRenew().catch((error: unknown) => {
        callbacks.failed?.(error);
        return false;
      });
      const now = Date.now();
      if (held) {
        this.lastRenewed = now;
        if (!this.leading) {
          this.leading = true;
          await callbacks.started();
        }
      } else if (this.leading && now - this.lastRenewed > this.config.renewDeadlineSeconds * 1000) {
        this.leading = false;
        callbacks.lost();
      }
      // A tick after release() returns at once, so no timer outlives the elector.
      this.timer = setTimeout(() => void tick(), this.config.retryPeriodSeconds * 1000);
    };
    void tick();
  }

  /** Stops campaigning and, when leading, hands the lease back so another replica takes over at once. */
  async release(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    const lease = await this.read().catch(() => undefined);
    if (lease?.spec?.holderIdentity !== this.config.identity) return;
    await this.write(lease, { holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: new V1MicroTime(), acquireTime: undefined, leaseTransitions: lease.spec.leaseTransitions }).catch(
      () => undefined,
    );
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new V1MicroTime();
    const lease = await this.read();
    const mine = { holderIdentity: this.config.identity, leaseDurationSeconds: this.config.leaseDurationSeconds, renewTime: now };
    if (lease === undefined) {
      await this.api.createNamespacedLease({
        namespace: this.config.namespace,
        body: { metadata: { name: this.config.name, namespace: this.config.namespace }, spec: { ...mine, acquireTime: now, leaseTransitions: 0 } },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity;
    const renewed = spec.renewTime === undefined ? 0 : new Date(spec.renewTime).getTime();
    const expired = renewed + (spec.leaseDurationSeconds ?? this.config.leaseDurationSeconds) * 1000 < now.getTime();
    if (holder !== undefined && holder !== '' && holder !== this.config.identity && !expired) return false;
    const transition = holder !== this.config.identity;
    try {
      await this.write(lease, {
        ...mine,
        acquireTime: transition || spec.acquireTime === undefined ? now : new V1MicroTime(spec.acquireTime),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (transition ? 1 : 0),
      });
      return true;
    } catch (error) {
      if (error instanceof ApiException && error.code === 409) return false;
      throw error;
    }
  }

  /** Replaces the lease, conditional on the resourceVersion it was read at. Times are MicroTimes, as the API requires. */
  private async write(
    lease: V1Lease,
    spec: { holderIdentity: string | undefined; leaseDurationSeconds: number; renewTime: V1MicroTime; acquireTime: V1MicroTime | undefined; leaseTransitions: number | undefined },
  ): Promise<void> {
    await this.api.replaceNamespacedLease({
      name: this.config.name,
      namespace: this.config.namespace,
      body: { metadata: { name: this.config.name, namespace: this.config.namespace, resourceVersion: lease.metadata?.resourceVersion }, spec },
    });
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.readNamespacedLease({ name: this.config.name, namespace: this.config.namespace });
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      throw error;
    }
  }
}
