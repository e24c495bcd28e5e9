#!/usr/bin/env python3
"""Fits the polynomial coefficients of boa's deterministic math (docs/determinism.md).

Run once; its output is pasted into common/engine/detmath.h as hexadecimal float literals.
Needs only mpmath. The coefficients are part of the format: changing them changes every
model-coded stream, so they are fixed by the format version, not refitted at build time.
"""
import struct
import mpmath as mp

mp.mp.dps = 40


def f32(x):
    return struct.unpack('<f', struct.pack('<f', float(x)))[0]


def show(name, coeffs):
    # chebyfit returns the highest degree first
    print(f"// {name}: degree {len(coeffs) - 1}, highest degree first")
    for c in coeffs:
        print(f"  {f32(c).hex()}f,  // {float(c):.10e}")


# e^r on |r| <= ln2/2 (after range reduction x = k ln2 + r)
h = mp.log(2) / 2
e, err = mp.chebyfit(mp.exp, [-h, h], 7, error=True)
print("// exp: max abs err", mp.nstr(err, 3))
show("E(r), e^r", e)

# 2^r = 1 + r * q(r) on |r| <= 1/2 (after t = k + r, k = round(t)); q has degree 4
q, err = mp.chebyfit(lambda r: (mp.power(2, r) - 1) / r if r != 0 else mp.log(2), [-0.5, 0.5], 5, error=True)
print("// pow2: max abs err of q", mp.nstr(err, 3))
show("q(r), 2^r = 1 + r*q(r)", q)

# log1p(u) for u in [0, 1]: s = u / (2 + u), z = s^2 in [0, 1/9], log1p(u) = 2s + s*z*P(z)
P, err = mp.chebyfit(lambda z: (2 * mp.atanh(mp.sqrt(z)) - 2 * mp.sqrt(z)) / (z * mp.sqrt(z)) if z > 0
                     else mp.mpf(2) / 3, [0, mp.mpf(1) / 9], 5, error=True)
print("// log1p: max abs err of P", mp.nstr(err, 3))
show("P(z), log1p(u) = 2s + s*z*P(s*s)", P)

# erfc(a) / 2 = exp(-a^2) * H(t), t = 1 / (1 + a/2), for 0 <= a < 4 (t in (1/3, 1]): the upper
# tail of the normal distribution that GELU needs, as one branch
H, err = mp.chebyfit(lambda t: mp.erfc(2 / t - 2) * mp.exp((2 / t - 2) ** 2) / 2, [mp.mpf(1) / 3, 1], 9,
                     error=True)
print("// half erfcx: max abs err", mp.nstr(err, 3))
show("H(t), erfc(a)/2 = exp(-a*a)*H(1/(1 + a/2))", H)
