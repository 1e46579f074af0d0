"""World-model maths and networks: value labels, causality, KV-cache equivalence, codec shapes."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from wmeval.model.codec import CodecConfig, FrameCodec
from wmeval.model.dynamics import Dynamics, DynamicsConfig, KVCache
from wmeval.model.flow import interpolate, sample_tau
from wmeval.model.value import value_labels

CFG = DynamicsConfig(latent_channels=4, grid=4, patch=2, d_model=32, depth=2, heads=2, chunk_len=2)


def inputs(B=2, T=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = CFG
    return dict(
        latents=torch.randn(B, T, c.views, c.latent_channels, c.grid, c.grid, generator=g),
        proprio=torch.randn(B, T, c.state_dim, generator=g),
        actions_in=torch.randn(B, T, c.chunk_len, c.action_dim, generator=g),
        has_action=torch.ones(B, T, dtype=torch.bool),
        tau=torch.rand(B, T, generator=g),
    )


def randomised(model):
    """adaLN-Zero starts every block as the identity; perturb so the tests exercise real attention."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


@pytest.mark.parametrize(
    "success, scheme, expected",
    [
        ([0, 0, 1, 1, 0], "linear", [0.5, 0.75, 1.0, 1.0, 1.0]),
        ([0, 0, 0, 0, 0], "linear", [0.5, 0.375, 0.25, 0.125, 0.0]),
        ([0, 0, 1, 0], "discounted", [0.81, 0.9, 1.0, 1.0]),
        ([0, 0, 0], "discounted", [0.0, 0.0, 0.0]),
        ([0, 1, 0], "outcome", [1.0, 1.0, 1.0]),
        ([0, 0, 0], "outcome", [0.0, 0.0, 0.0]),
    ],
)
def test_value_labels_match_hand_computed(success, scheme, expected):
    got = value_labels(np.array(success, bool), scheme, start=0.5, gamma=0.9)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_unknown_value_scheme_lists_valid_ones():
    with pytest.raises(ValueError, match="valid schemes: linear, discounted, outcome"):
        value_labels(np.zeros(3, bool), "sigmoid")


def test_flow_interpolation_ends():
    x1, eps = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    torch.testing.assert_close(interpolate(x1, eps, torch.ones(2, 3)), x1)
    torch.testing.assert_close(interpolate(x1, eps, torch.zeros(2, 3)), eps)
    tau = sample_tau((1000,), p_clean=0.25, generator=torch.Generator().manual_seed(0))
    assert 0.15 < (tau == 1).float().mean() < 0.35 and tau.min() >= 0


def test_dynamics_shapes():
    model = Dynamics(CFG)
    out = model(**inputs())
    assert out.latent_velocity.shape == (2, 5, 1, 4, 4, 4)
    assert out.proprio_velocity.shape == (2, 5, 4) and out.value_logit.shape == (2, 5)


def test_causality_future_actions_never_change_the_past():
    model = randomised(Dynamics(CFG))
    a = inputs()
    b = {k: v.clone() for k, v in a.items()}
    b["actions_in"][:, 3:] += 5.0  # change the actions into frames 3 and 4
    b["latents"][:, 4] += 1.0  # and the last frame itself
    with torch.no_grad():
        oa, ob = model(**a), model(**b)
    torch.testing.assert_close(oa.latent_velocity[:, :3], ob.latent_velocity[:, :3])
    torch.testing.assert_close(oa.value_logit[:, :3], ob.value_logit[:, :3])
    assert not torch.allclose(oa.latent_velocity[:, 3:], ob.latent_velocity[:, 3:])


def test_kv_cache_step_equals_full_window():
    model = randomised(Dynamics(CFG))
    x = inputs(T=4)
    with torch.no_grad():
        full = model(**x)
        cache = KVCache(max_frames=8, tokens_per_frame=CFG.tokens_per_frame)
        for t in range(4):
            step = model.step(**{k: v[:, t : t + 1] for k, v in x.items()}, cache=cache, commit=True)
            torch.testing.assert_close(step.latent_velocity[:, 0], full.latent_velocity[:, t], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(step.value_logit[:, 0], full.value_logit[:, t], atol=1e-5, rtol=1e-4)
    assert cache.frames == 4 and cache.k[0].shape[2] == 4 * CFG.tokens_per_frame


RES = DynamicsConfig(latent_channels=4, grid=4, patch=2, d_model=32, depth=2, heads=2, chunk_len=2, residual=True,
                     success_head=True)  # fmt: skip


def residual_inputs(T=4):
    x = inputs(T=T)
    x["prev"] = (torch.cat([torch.zeros_like(x["latents"][:, :1]), x["latents"][:, :-1]], 1),
                 torch.cat([torch.zeros_like(x["proprio"][:, :1]), x["proprio"][:, :-1]], 1))  # fmt: skip
    return x


def test_residual_kv_cache_step_equals_full_window_and_success_head_is_causal():
    model = randomised(Dynamics(RES))
    x = residual_inputs()
    with torch.no_grad():
        full = model(**x)
        cache = KVCache(max_frames=8, tokens_per_frame=RES.tokens_per_frame)
        for t in range(4):
            now = {k: v[:, t : t + 1] for k, v in x.items() if k != "prev"}
            step = model.step(**now, cache=cache, commit=True, prev=tuple(p[:, t : t + 1] for p in x["prev"]))
            for f in ("latent_velocity", "proprio_velocity", "success_logit"):
                torch.testing.assert_close(getattr(step, f)[:, 0], getattr(full, f)[:, t], atol=1e-5, rtol=1e-4)
        changed = {**x, "latents": x["latents"].clone()}
        changed["latents"][:, 3] += 1.0
        other = model(**changed)
    torch.testing.assert_close(other.success_logit[:, :3], full.success_logit[:, :3])
    assert full.success_logit.shape == (2, 4)


def test_untrained_residual_model_copies_the_previous_frame():
    """Zero-initialised output layers: the predicted clean frame is the previous frame, at any noise level."""
    from wmeval.model.flow import euler_schedule

    model = Dynamics(RES).eval()
    x = residual_inputs(T=1)
    z, p = torch.randn_like(x["latents"]), torch.randn_like(x["proprio"])
    taus = euler_schedule(4)
    with torch.no_grad():
        for t0, t1 in zip(taus[:-1], taus[1:], strict=True):
            out = model(z, p, x["actions_in"], x["has_action"], torch.full((2, 1), float(t0)), prev=x["prev"])
            z, p = z + (t1 - t0) * out.latent_velocity, p + (t1 - t0) * out.proprio_velocity
    torch.testing.assert_close(z, x["prev"][0])
    torch.testing.assert_close(p, x["prev"][1])


def test_readout_is_the_success_head_when_there_is_one():
    from wmeval.model.dynamics import DynamicsOutput
    from wmeval.model.world_model import WorldModel

    v, s = torch.tensor([[0.0, 2.0]]), torch.tensor([[-3.0, 1.0]])
    without = DynamicsOutput(None, None, v)
    torch.testing.assert_close(WorldModel.readout(without), torch.sigmoid(v))
    torch.testing.assert_close(WorldModel.readout(DynamicsOutput(None, None, v, s)), torch.sigmoid(s))


def test_residual_model_refuses_to_run_without_the_previous_frames():
    with pytest.raises(ValueError, match="previous frames"):
        Dynamics(RES)(**inputs())


def test_sliding_cache_keeps_the_last_frames():
    cache = KVCache(max_frames=2, tokens_per_frame=3)
    for i in range(4):
        cache.append(0, torch.full((1, 1, 3, 2), float(i)), torch.zeros(1, 1, 3, 2))
    assert cache.k[0].shape[2] == 6 and cache.k[0][0, 0, 0, 0] == 2.0


def test_a_long_rollout_shows_each_frame_what_a_training_window_shows():
    """Past the window, a generated frame attends to window - 1 past frames: with one layer its output equals
    the last frame of a training window over the same frames (rotary positions are relative, so where the
    window starts is moot; deeper cached keys also carry what their frames once saw further back)."""
    from wmeval.model.world_model import WorldModel, preset

    W = 4
    wm = WorldModel(preset("tiny", 16, 1, CFG.state_dim, CFG.action_dim, CFG.chunk_len))
    assert wm.start(*(torch.zeros(1, 1, *s) for s in ((1, 4, 2, 2), (4,), (2, 4))), torch.zeros(1, 1, dtype=torch.bool),
                    )[0].max_frames == wm.cfg.window - 1  # fmt: skip
    model = randomised(Dynamics(replace(CFG, depth=1)))
    x = inputs(T=7)
    cache = KVCache(max_frames=W - 1, tokens_per_frame=CFG.tokens_per_frame)
    with torch.no_grad():
        for t in range(7):
            step = model.step(**{k: v[:, t : t + 1] for k, v in x.items()}, cache=cache, commit=True)
        window = model(**{k: v[:, 7 - W :] for k, v in x.items()})
    torch.testing.assert_close(step.latent_velocity[:, 0], window.latent_velocity[:, -1], atol=1e-5, rtol=1e-4)


def test_codec_round_trip_shapes():
    codec = FrameCodec(CodecConfig(image_size=32, latent_channels=4, widths=(8, 16, 16)))
    frames = torch.randint(0, 255, (2, 2, 32, 32, 3), dtype=torch.uint8)
    z = codec.encode(frames)
    assert z.shape == (2, 2, 4, 4, 4)
    assert codec.decode(z).shape == (2, 2, 32, 32, 3)
    loss, metrics = codec.loss(frames)
    assert loss.item() > 0 and metrics["psnr"] > 0


@pytest.mark.parametrize("cfg", [CFG, RES], ids=["plain", "residual"])
def test_teacher_forced_window_equals_a_rollout_over_context_copies(cfg):
    """Each noisy frame of a teacher-forced window sees exactly what `step` sees in a rollout: the context
    copies of the earlier frames in the cache, itself uncommitted; the context copies run as a plain window."""
    model = randomised(Dynamics(cfg))
    x = residual_inputs() if cfg.residual else inputs(T=4)
    g = torch.Generator().manual_seed(3)
    ctx = (x["latents"] + 0.1 * torch.randn(x["latents"].shape, generator=g), x["proprio"] * 0.9,
           0.95 + 0.05 * torch.rand(2, 4, generator=g))  # fmt: skip
    with torch.no_grad():
        noisy, read = model(**x, context=ctx)
        plain = model(**{**x, "latents": ctx[0], "proprio": ctx[1], "tau": ctx[2]})
        cache = KVCache(max_frames=8, tokens_per_frame=cfg.tokens_per_frame)
        for t in range(4):
            at = {k: v[:, t : t + 1] for k, v in x.items() if k != "prev"}
            prev = tuple(p[:, t : t + 1] for p in x["prev"]) if cfg.residual else None
            step = model.step(**at, cache=cache, commit=False, prev=prev)
            torch.testing.assert_close(step.latent_velocity[:, 0], noisy.latent_velocity[:, t], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(step.proprio_velocity[:, 0], noisy.proprio_velocity[:, t], atol=1e-5, rtol=1e-4)
            c = {**at, "latents": ctx[0][:, t : t + 1], "proprio": ctx[1][:, t : t + 1], "tau": ctx[2][:, t : t + 1]}
            model.step(**c, cache=cache, commit=True, prev=prev)
    for f in ("latent_velocity", "value_logit"):
        torch.testing.assert_close(getattr(read, f), getattr(plain, f), atol=1e-5, rtol=1e-4)


def _guided_model(guidance: float, dropout: float = 0.1):
    from wmeval.model.world_model import WorldModel, preset

    cfg = preset("tiny", 16, 1, CFG.state_dim, CFG.action_dim, CFG.chunk_len)
    torch.manual_seed(0)  # the same weights whatever the sampling settings
    wm = WorldModel(replace(cfg, action_dropout=dropout, guidance=guidance))
    randomised(wm.dynamics)
    return wm.eval()


def _frames(wm, action: torch.Tensor, n: int = 1) -> torch.Tensor:
    """n generated frames (latents and proprio) from a fixed context, the same noise every call."""
    d, g = wm.cfg.dynamics, torch.Generator().manual_seed(0)
    cache, _ = wm.start(torch.zeros(1, 2, 1, d.latent_channels, d.grid, d.grid), torch.zeros(1, 2, d.state_dim),
                        torch.zeros(1, 2, d.chunk_len, d.action_dim), torch.tensor([[False, True]]))  # fmt: skip
    return torch.cat([torch.cat([z.flatten(1), p], 1) for z, p, _ in (wm.next_frame(cache, action, g)
                                                                       for _ in range(n))], 1)  # fmt: skip


def test_action_guidance_interpolates_between_the_action_free_and_the_conditional_prediction():
    """Guidance 0 samples the action-free prediction (the action cannot matter), 1 the plain conditional one,
    and the Euler steps' velocities extrapolate linearly in between and beyond."""
    a, b = torch.randn(2, 1, CFG.chunk_len, CFG.action_dim, generator=torch.Generator().manual_seed(5))
    free_a, free_b = _frames(_guided_model(0.0), a), _frames(_guided_model(0.0), b)
    torch.testing.assert_close(free_a, free_b)  # same noise, different actions, no action in the prediction
    plain = _frames(_guided_model(1.0), a)
    assert not torch.allclose(plain, free_a, atol=1e-4)  # the randomised model does read its actions
    plain_no_dropout = _frames(_guided_model(1.0, dropout=0.0), a)
    torch.testing.assert_close(plain, plain_no_dropout)  # dropout is a training setting only
    guided = _frames(_guided_model(2.0), a)
    assert (guided - plain).abs().sum() > 0.1 * (plain - free_a).abs().sum()


def test_guidance_needs_a_model_trained_with_action_dropout():
    from wmeval.model.world_model import WorldModelConfig

    with pytest.raises(ValueError, match="retrain with `wmeval train --action-dropout"):
        WorldModelConfig(guidance=2.0)
    with pytest.raises(ValueError, match="action_dropout must be in"):
        WorldModelConfig(action_dropout=1.0)


def test_autoguidance_extrapolates_from_a_weaker_model_of_the_same_latent_space():
    """Scale 0 samples the guide alone (over several frames: its own cache is kept), 1 the model alone, more
    extrapolates; a guide with the model's own weights changes nothing; a guide of another codec is refused."""
    a = torch.randn(1, CFG.chunk_len, CFG.action_dim, generator=torch.Generator().manual_seed(5))
    model, guide = _guided_model(1.0, dropout=0.0), _guided_model(1.0, dropout=0.0)
    with torch.no_grad():  # a different dynamics over the same codec and normalisation
        for q in guide.dynamics.parameters():
            q.add_(torch.randn(q.shape, generator=torch.Generator().manual_seed(3)) * 0.05)
    plain, guide_alone = _frames(model, a, 3), _frames(guide, a, 3)
    model.guide_with(guide, 0.0)
    torch.testing.assert_close(_frames(model, a, 3), guide_alone)
    model.guide_with(guide, 1.0)
    torch.testing.assert_close(_frames(model, a, 3), plain)
    model.guide_with(guide, 2.0)
    assert (_frames(model, a, 3) - plain).abs().sum() > 0.1 * (plain - guide_alone).abs().sum()
    model.guide_with(_guided_model(1.0, dropout=0.0), 3.0)  # the model guiding itself
    torch.testing.assert_close(_frames(model, a, 3), plain)
    model.guide_with(None)
    torch.testing.assert_close(_frames(model, a, 3), plain)
    other = _guided_model(1.0, dropout=0.0)
    other.latent_std.fill_(2.0)
    with pytest.raises(ValueError, match="must share this model's codec and normalisation"):
        model.guide_with(other)
    with pytest.raises(ValueError, match="cannot be combined"):
        _guided_model(2.0).guide_with(_guided_model(2.0))


def test_a_judge_reads_the_generated_frames_alone():
    """With a judge, the readout of every context and generated frame is the judge's probability on the newest
    `frames` frames (latents and proprio, no actions), computed here independently."""
    from wmeval.model.judge import Judge, JudgeConfig

    model = _guided_model(1.0, dropout=0.0)
    d = model.cfg.dynamics
    torch.manual_seed(4)
    judge = Judge(JudgeConfig(d.latent_channels, d.grid, d.views, d.patch, d.state_dim, d_model=16, heads=2,
                              frames=3)).eval()  # fmt: skip
    model.judge_with(judge)
    g = torch.Generator().manual_seed(0)
    ctx = (torch.randn(2, 2, 1, d.latent_channels, d.grid, d.grid, generator=g), torch.randn(2, 2, d.state_dim,
           generator=g), torch.zeros(2, 2, d.chunk_len, d.action_dim), torch.tensor([[False, True]] * 2))  # fmt: skip
    cache, readout = model.start(*ctx)
    z_all, p_all = [ctx[0]], [ctx[1]]
    values = []
    for _ in range(3):
        z, p, v = model.next_frame(cache, torch.randn(2, d.chunk_len, d.action_dim, generator=g), g)
        z_all.append(z[:, None]), p_all.append(p[:, None]), values.append(v)
    z_all, p_all = torch.cat(z_all, 1), torch.cat(p_all, 1)
    with torch.no_grad():
        want = [torch.sigmoid(judge(z_all[:, max(0, t - 2) : t + 1], p_all[:, max(0, t - 2) : t + 1])) for t in range(5)]
    torch.testing.assert_close(readout, torch.stack(want[:2], 1))
    torch.testing.assert_close(torch.stack(values, 1), torch.stack(want[2:], 1))
    model.judge_with(None)
    assert not torch.allclose(model.start(*ctx)[1], readout)  # back to the value head
    wrong = Judge(JudgeConfig(d.latent_channels + 1, d.grid, d.views, d.patch, d.state_dim))
    with pytest.raises(ValueError, match="train a judge for it"):
        model.judge_with(wrong)


def test_action_dropout_hides_actions_from_the_training_loss():
    """With (almost) every frame's actions dropped the loss does not depend on the actions; without dropout
    it does; the same generator gives the same loss (dropout draws from it, so runs repeat)."""
    from wmeval.model.world_model import Window

    def loss(wm, actions, seed=0):
        d, B, T = wm.cfg.dynamics, 2, 4
        g = torch.Generator().manual_seed(9)
        w = Window(latents=torch.randn(B, T, 1, d.latent_channels, d.grid, d.grid, generator=g),
                   proprio=torch.randn(B, T, d.state_dim, generator=g), actions_in=actions,
                   has_action=torch.ones(B, T, dtype=torch.bool), value=torch.rand(B, T, generator=g))  # fmt: skip
        return wm.loss(w, torch.Generator().manual_seed(seed))[0].item()

    g = torch.Generator().manual_seed(2)
    a, b = (torch.randn(2, 4, CFG.chunk_len, CFG.action_dim, generator=g) for _ in range(2))
    hidden = _guided_model(1.0, dropout=0.999)
    assert loss(hidden, a) == pytest.approx(loss(hidden, b), abs=1e-6)
    assert loss(hidden, a) == loss(hidden, a)
    seen = _guided_model(1.0, dropout=0.0)
    assert loss(seen, a) != pytest.approx(loss(seen, b), abs=1e-4)


def test_motion_weights_favour_the_cells_that_move_and_average_one():
    """One cell moves by 1 per frame in a 2x2 grid, the others are still: with a = 3, m / mean m is 4 there and
    0 elsewhere, so the weights are (1 + 12) / 4 and 1 / 4 (mean 1); a window's first frame takes its
    successor's motion. When nothing moves, every weight is 1."""
    from wmeval.model.config import WorldModelConfig
    from wmeval.model.world_model import motion_weights

    z = torch.zeros(1, 3, 1, 2, 2, 2)  # B, T, V, C, h, w
    z[0, :, 0, :, 0, 1] = torch.arange(3.0)[:, None]  # cell (0, 1) moves, both channels
    w = motion_weights(z, 3.0)
    assert w.shape == (1, 3, 1, 2, 2)
    expected = torch.full((2, 2), 0.25)
    expected[0, 1] = 13 / 4
    for t in range(3):
        torch.testing.assert_close(w[0, t, 0], expected)
    assert w.mean().item() == pytest.approx(1.0)
    torch.testing.assert_close(motion_weights(torch.ones(1, 3, 1, 2, 2, 2), 3.0), torch.ones(1, 3, 1, 2, 2))
    with pytest.raises(ValueError, match="motion_weight must be >= 0"):
        WorldModelConfig(motion_weight=-1.0)


def test_a_motion_weighted_loss_trains_on_the_same_windows():
    from wmeval.model.world_model import Window

    wm = _guided_model(1.0, dropout=0.0)
    d, B, T = wm.cfg.dynamics, 2, 4
    g = torch.Generator().manual_seed(3)
    w = Window(latents=torch.randn(B, T, 1, d.latent_channels, d.grid, d.grid, generator=g),
               proprio=torch.randn(B, T, d.state_dim, generator=g),
               actions_in=torch.randn(B, T, d.chunk_len, d.action_dim, generator=g),
               has_action=torch.ones(B, T, dtype=torch.bool), value=torch.rand(B, T, generator=g))  # fmt: skip
    plain = wm.loss(w, torch.Generator().manual_seed(0))[1]["latent"].item()
    wm.cfg = replace(wm.cfg, motion_weight=4.0)
    weighted = wm.loss(w, torch.Generator().manual_seed(0))[1]["latent"].item()
    assert np.isfinite(weighted) and weighted != pytest.approx(plain, rel=1e-3)
