/**
 * What does createVerifier add to a bare signature check? Access tokens
 * verified per second by `createVerifier(...).verify(request)` (header
 * parsing, the JWKS cache, RFC 9068 claim rules, revocation and scope
 * checks) against raw jose `jwtVerify` with the public key in hand and the
 * same issuer/audience/typ checks, over the same tokens, EdDSA and ES256.
 *
 *   node bench/sdk-verify.ts [--tokens 2000] [--rounds 7]
 *
 * Every round runs the four measurements once over all tokens, one request
 * at a time, the order rotating from round to round so that drift of the
 * machine falls on all of them; the table shows medians over rounds and the
 * ratio verifier / raw (1.0 = no overhead). The verifier's JWKS comes from
 * an in-memory fetch and is loaded during the untimed warm-up, as it is on
 * a resource server past its first request.
 */
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey } from 'jose';
import { createVerifier, type Verifier } from '../src/sdk/index.ts';
import { machine, median, positiveInteger, table, writeResult } from './lib.ts';

const tokenCount = positiveInteger('tokens', 2000);
const rounds = positiveInteger('rounds', 7);

const ISSUER = 'https://as.example.com';
const AUDIENCE = 'https://api.example.com';
const URL_CALLED = `${AUDIENCE}/things`;
const ALGS = ['EdDSA', 'ES256'] as const;
type Alg = (typeof ALGS)[number];

interface Setup {
  readonly alg: Alg;
  readonly publicKey: CryptoKey;
  readonly tokens: string[];
  readonly verifier: Verifier;
}

async function setup(alg: Alg): Promise<Setup> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const kid = randomUUID();
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }] });
  const verifier = createVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwksUri: `${ISSUER}/jwks`,
    fetch: async () => new Response(jwks, { headers: { 'cache-control': 'max-age=3600' } }),
  });
  const now = Math.floor(Date.now() / 1000);
  const tokens = await Promise.all(
    Array.from({ length: tokenCount }, () =>
      new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: randomUUID(), client_id: 'bench-client', jti: randomUUID(), iat: now, exp: now + 3600, scope: 'things:read things:write' })
        .setProtectedHeader({ alg, typ: 'at+jwt', kid })
        .sign(privateKey),
    ),
  );
  return { alg, publicKey, tokens, verifier };
}

type Kind = 'raw jose jwtVerify' | 'createVerifier';
interface Measurement {
  readonly alg: Alg;
  readonly kind: Kind;
}
const MEASUREMENTS: readonly Measurement[] = ALGS.flatMap((alg) => (['raw jose jwtVerify', 'createVerifier'] as const).map((kind) => ({ alg, kind })));
const label = (measurement: Measurement) => `${measurement.alg} ${measurement.kind}`;

async function run(setup: Setup, kind: Kind, tokens: readonly string[]): Promise<number> {
  const start = process.hrtime.bigint();
  if (kind === 'raw jose jwtVerify') {
    for (const token of tokens) await jwtVerify(token, setup.publicKey, { issuer: ISSUER, audience: AUDIENCE, typ: 'at+jwt', algorithms: [setup.alg] });
  } else {
    for (const token of tokens) {
      const result = await setup.verifier.verify({ method: 'GET', url: URL_CALLED, headers: { authorization: `Bearer ${token}` } });
      if (!result.ok) throw new Error(`a good token was refused: ${result.description}`);
    }
  }
  return tokens.length / (Number(process.hrtime.bigint() - start) / 1e9);
}

const setups = new Map<Alg, Setup>();
for (const alg of ALGS) setups.set(alg, await setup(alg));
console.log(`${tokenCount} tokens per algorithm, ${rounds} rounds`);

// Warm-up (untimed): the JIT, and the verifier's JWKS fetch and key import.
for (const measurement of MEASUREMENTS) await run(setups.get(measurement.alg)!, measurement.kind, setups.get(measurement.alg)!.tokens.slice(0, 500));

const rates = new Map<string, number[]>(MEASUREMENTS.map((measurement) => [label(measurement), []]));
for (let round = 0; round < rounds; round++) {
  for (let k = 0; k < MEASUREMENTS.length; k++) {
    const measurement = MEASUREMENTS[(round + k) % MEASUREMENTS.length]!;
    const setup = setups.get(measurement.alg)!;
    const rate = await run(setup, measurement.kind, setup.tokens);
    rates.get(label(measurement))!.push(rate);
    console.log(`round ${round + 1}/${rounds}: ${label(measurement)} ${Math.round(rate).toLocaleString('en-US')}/s`);
  }
}

const medianOf = (alg: Alg, kind: Kind) => median(rates.get(label({ alg, kind }))!);
const rows = ALGS.map((alg) => {
  const raw = medianOf(alg, 'raw jose jwtVerify');
  const sdk = medianOf(alg, 'createVerifier');
  return { alg, rawPerSecond: Math.round(raw), verifierPerSecond: Math.round(sdk), ratio: Math.round((sdk / raw) * 1000) / 1000 };
});
console.log(`\nmedians of ${rounds} rounds, ${tokenCount} tokens each, one at a time`);
console.log(
  table(
    ['alg', 'raw jwtVerify/s', 'createVerifier/s', 'verifier / raw'],
    rows.map((row) => [row.alg, row.rawPerSecond.toLocaleString('en-US'), row.verifierPerSecond.toLocaleString('en-US'), row.ratio.toFixed(3)]),
  ),
);
const file = writeResult('sdk-verify', {
  benchmark: 'sdk-verify',
  at: new Date().toISOString(),
  machine: machine(),
  settings: { tokens: tokenCount, rounds },
  rows,
  rounds: Object.fromEntries([...rates].map(([name, values]) => [name, values.map(Math.round)])),
});
console.log(`wrote ${file}`);
