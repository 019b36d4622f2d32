import numpy as np

from battloop.health.models import simulate_aging, state_at


def test_state_read_off_a_fleet_run_equals_each_packs_own_run():
    rng = np.random.default_rng(3)
    temps = 20 + 8 * np.sin(np.linspace(0, 20, 120))[None, :] + rng.normal(0, 2, (4, 120))
    efc = rng.uniform(0, 0.3, (4, 120))
    ends = np.array([119, 60, 30, 5])
    for chem in ("LFP", "NMC"):
        fleet = simulate_aging(chem, temps, soc_mean=0.97, efc_per_step=efc, dod=0.5, dt_days=30.4, pack_factor=1.2)
        got = state_at(chem, fleet, ends, multiplier=1.2)
        for i, e in enumerate(ends):
            own = simulate_aging(chem, temps[i, : e + 1], soc_mean=0.97, efc_per_step=efc[i, : e + 1], dod=0.5, dt_days=30.4,
                                 pack_factor=1.2).final_state
            for name in ("s_cal", "s_cyc", "s_res", "efc"):
                assert np.isclose(getattr(got, name)[i], getattr(own, name), rtol=1e-9, atol=1e-12), (chem, i, name)
