import numpy as np
import pytest

from battloop.logistics.instances import (
    InstanceFormatError,
    euc_2d_matrix,
    read_capopt,
    read_cvrplib,
    read_holmberg,
    read_orlib_cap,
)


def test_orlib_cap41_is_read_with_the_published_layout(netopt):
    inst = read_orlib_cap(netopt / "orlib_cap" / "cap41.txt")
    assert (inst.n_facilities, inst.n_customers) == (16, 50)
    assert inst.capacity[0] == 5000 and inst.fixed_cost[0] == 7500 and inst.fixed_cost[10] == 0
    assert inst.demand[0] == 146 and inst.demand[1] == 87
    # first customer's cost row: the file lists warehouse costs for customer 1 after its demand
    assert inst.cost[0, 0] == pytest.approx(6739.725) and inst.cost[15, 0] == pytest.approx(6051.7)
    assert inst.cost[0, 1] == pytest.approx(3204.8625)


def test_capacity_word_is_substituted_and_required(netopt, tmp_path):
    text = (netopt / "orlib_cap" / "cap41.txt").read_text()
    lines = text.splitlines()
    for i in range(1, 17):
        lines[i] = lines[i].replace("5000", "capacity")
    f = tmp_path / "capx.txt"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(InstanceFormatError) as e:
        read_orlib_cap(f)
    assert "capx.txt, line 2" in str(e.value) and "--capacity" in str(e.value)
    inst = read_orlib_cap(f, capacity=8000)
    assert np.all(inst.capacity == 8000)


def test_holmberg_nul_padding_and_crlf_are_stripped(netopt):
    raw = (netopt / "holmberg_sscflp" / "original" / "p2").read_bytes()
    assert b"\r\n" in raw  # the distributed file really is CRLF
    inst = read_holmberg(netopt / "holmberg_sscflp" / "original" / "p2")
    assert (inst.n_facilities, inst.n_customers) == (10, 50)
    assert inst.capacity[0] == 258 and inst.fixed_cost[0] == 300
    assert inst.demand[0] == 49 and inst.demand[1] == 29
    assert inst.cost.shape == (10, 50)


@pytest.mark.parametrize(
    "content, line, words",
    [
        ("2 2\n10 5\n10 x\n", 3, "fixed cost of warehouse 2"),
        ("2 2\n10 5\n10 5\n3 1 2\n", 4, "file ends early"),
        ("2 2\n10 5\n10 5\n3 1 2\n4 1 2 9\n", 5, "unexpected extra data"),
        ("2.5 2\n", 1, "positive integer"),
        ("2 2\n0 5\n10 5\n3 1 2\n4 1 2\n", 2, "must be positive"),
    ],
)
def test_malformed_orlib_files_name_file_line_and_expectation(tmp_path, content, line, words):
    f = tmp_path / "bad.txt"
    f.write_text(content)
    with pytest.raises(InstanceFormatError) as e:
        read_orlib_cap(f)
    msg = str(e.value)
    assert f"bad.txt, line {line}" in msg and words in msg


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InstanceFormatError, match="file not found"):
        read_holmberg(tmp_path / "nope")


def test_cvrplib_reader_and_rounded_euc2d(netopt):
    inst = read_cvrplib(netopt / "cvrplib" / "A" / "A-n32-k5.vrp")
    assert inst.name == "A-n32-k5" and inst.capacity == 100 and inst.n_customers == 31
    assert inst.best_known == 784 and inst.trucks_in_name == 5
    assert inst.node_ids[0] == 1 and inst.demand[0] == 0
    # node 1 (82,76) to node 2 (96,44): sqrt(14^2+32^2)=34.93 -> 35
    assert inst.distance[0, 1] == 35
    assert int(inst.demand.sum()) == 410


def test_euc2d_rounds_half_up():
    d = euc_2d_matrix(np.array([[0.0, 0.0], [0.5, 0.0], [3.0, 4.0]]))
    assert d[0, 1] == 1 and d[0, 2] == 5


@pytest.mark.parametrize(
    "body, words",
    [
        ("NAME : t\nDIMENSION : 2\nCAPACITY : 10\nEDGE_WEIGHT_TYPE : GEO\nNODE_COORD_SECTION\n1 0 0\n2 1 1\n", "GEO is not supported"),
        ("NAME : t\nDIMENSION : 3\nCAPACITY : 10\nNODE_COORD_SECTION\n1 0 0\n2 1 1\nDEMAND_SECTION\n1 0\n2 1\n", "DIMENSION is 3"),
        ("NAME : t\nDIMENSION : 2\nCAPACITY : 10\nNODE_COORD_SECTION\n1 0 0\n2 1\n", "line 6"),
        ("NAME : t\nDIMENSION : 2\nCAPACITY : 10\nNODE_COORD_SECTION\n1 0 0\n2 1 1\nDEMAND_SECTION\n1 0\n2 11\n", "more than the vehicle CAPACITY"),
        ("NAME : t\nDIMENSION : 2\nNODE_COORD_SECTION\n1 0 0\n2 1 1\n", "CAPACITY"),
    ],
)
def test_malformed_vrp_files(tmp_path, body, words):
    f = tmp_path / "bad.vrp"
    f.write_text(body)
    with pytest.raises(InstanceFormatError) as e:
        read_cvrplib(f)
    assert "bad.vrp" in str(e.value) and words in str(e.value)


def test_capopt_table(netopt):
    opt = read_capopt(netopt / "orlib_cap" / "capopt.txt")
    assert len(opt) == 37 and opt["cap41"] == 1040444.375 and opt["cap134"] == 928941.75
