// Seeded randomness for the simulator and for tests of the engine's statistics. The engine
// itself draws nothing; whoever needs draws makes a Random from a seed and hands it in.

export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
}

/** xoshiro128** seeded through splitmix32: fast, and the same sequence on every machine. */
export function seeded(seed: number): Random {
  let s = seed >>> 0;
  const split = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split();
  let b = split();
  let c = split();
  let d = split();
  return {
    next(): number {
      const result = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9) >>> 0;
      const t = (b << 9) >>> 0;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = rotl(d, 11);
      return result / 4294967296;
    },
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export function standardNormal(random: Random): number {
  // Box–Muller; 1 − u keeps the logarithm finite.
  const u = 1 - random.next();
  const v = random.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * A Binomial(n, p) draw. Exact by inversion while the expected count of the rarer outcome is
 * small (where the shape matters most: a handful of errors); normal with continuity correction
 * beyond, where the two cannot be told apart at the sizes a rollout sees.
 */
export function binomial(random: Random, n: number, p: number): number {
  if (n <= 0 || p <= 0) return 0;
  if (p >= 1) return n;
  if (p > 0.5) return n - binomial(random, n, 1 - p);
  const mean = n * p;
  if (mean < 30) return binomialByInversion(random, n, p);
  const draw = Math.round(mean + Math.sqrt(mean * (1 - p)) * standardNormal(random));
  return Math.min(n, Math.max(0, draw));
}

function binomialByInversion(random: Random, n: number, p: number): number {
  const q = 1 - p;
  const ratio = p / q;
  let probability = Math.exp(n * Math.log1p(-p));
  let cumulative = probability;
  const u = random.next();
  let k = 0;
  while (u > cumulative && k < n) {
    probability *= (ratio * (n - k)) / (k + 1);
    cumulative += probability;
    k++;
    // Floating-point tail: stop once further terms cannot change the answer.
    if (probability < 1e-300) break;
  }
  return k;
}

/** Splits n draws over categories with the given probabilities (summing to 1). */
export function multinomial(random: Random, n: number, probabilities: readonly number[]): number[] {
  let remaining = n;
  let mass = 1;
  return probabilities.map((p, i) => {
    if (i === probabilities.length - 1) return remaining;
    const draw = mass <= 0 ? 0 : binomial(random, remaining, Math.min(1, p / mass));
    remaining -= draw;
    mass -= p;
    return draw;
  });
}

/** A Poisson(mean) draw: exact by inversion for small means, normal beyond. */
export function poisson(random: Random, mean: number): number {
  if (mean <= 0) return 0;
  if (mean >= 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * standardNormal(random)));
  const u = random.next();
  let k = 0;
  let probability = Math.exp(-mean);
  let cumulative = probability;
  while (u > cumulative && probability > 1e-300) {
    k++;
    probability *= mean / k;
    cumulative += probability;
  }
  return k;
}
