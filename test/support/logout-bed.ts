/**
 * What the back-channel logout tests start from: a running deployment (its
 * own schema and key prefix on postgres+redis), a receiver of deliveries,
 * and an application "Mail" that registered a backchannel_logout_uri there.
 * Call inside a `describe`: it registers the before and after hooks, and the
 * getter is read from the tests.
 */
import { after, before } from 'node:test';
import { startDeliveryReceiver, type DeliveryReceiver } from './delivery-receiver.ts';
import { registerClient, type RegisteredClient } from './oauth-flow.ts';
import { privacyDeployment, type PrivacyDeployment } from './privacy-deployment.ts';
import type { TestBackend } from './server.ts';

export interface LogoutBed {
  readonly deployment: PrivacyDeployment;
  readonly receiver: DeliveryReceiver;
  readonly app: RegisteredClient;
}

export function logoutBed(backend: TestBackend, redirectUri: string): () => LogoutBed {
  let bed: LogoutBed | undefined;
  let receiver: DeliveryReceiver | undefined;
  let deployment: PrivacyDeployment | undefined;
  before(async () => {
    receiver = await startDeliveryReceiver();
    deployment = await privacyDeployment(backend);
    await deployment.start();
    const app = await registerClient(deployment, {
      client_name: 'Mail',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      scope: 'openid',
      token_endpoint_auth_method: 'client_secret_basic',
      backchannel_logout_uri: `${receiver.base}/logout`,
    });
    bed = { deployment, receiver, app };
  });
  after(async () => {
    await deployment?.remove();
    await receiver?.close();
  });
  return () => {
    if (bed === undefined) throw new Error('logoutBed: read before its before() hook ran');
    return bed;
  };
}
