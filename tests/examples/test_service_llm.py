"""The service marketplace's LLM script (examples/usecases/service_llm.py): an LLM seat's declared actions through a
real OpenAI-compatible round trip on a stateful mechanism, paired with the honest seat on the same draws."""

from tests.examples.conftest import EXAMPLES, load_example

MARKETS, ROUNDS = 3, 5


def test_an_honest_answer_pairs_exactly_and_haste_takes_the_first_choice_tasks(isolated_registries):
    script = load_example("usecases/service_llm.py")
    with script.scripted() as honest, script.scripted(quality=1.0, haste=1.0) as hasty:
        baseline = script.row("honest", None, markets=MARKETS, rounds=ROUNDS)
        same = script.row("honest answers", honest, markets=MARKETS, rounds=ROUNDS)
        fast = script.row("haste 1", hasty, markets=MARKETS, rounds=ROUNDS)
    for row in (same, fast):  # one request per decision, every answer valid at once, the fields as declared
        assert (row["requests"], row["valid"], row["decisions"]) == (MARKETS * ROUNDS,) * 3, row
        assert (row["repaired"], row["fallback"], row["error"], row["proposed"]) == (0, 0, 0, 1.0), row
    assert baseline["requests"] == baseline["decisions"] == 0
    # the honest plan answered through the model is the honest agent: the same draws give the same utility
    assert same["gain"] == {"mean": 0.0, "ci95": [0.0, 0.0]} and same["tasks"] == baseline["tasks"]
    assert (fast["quality"], fast["haste"], fast["fakes"], fast["strikes"]) == (1.0, 1.0, 0.0, 0.0)
    # launch: customers take the first proposal, and haste 1 answers first, so it wins every task (first-proposal
    # bias), more than the honest seat's share; at full effort no customer disputes, so it earns more
    assert fast["tasks"] == fast["all_tasks"] > baseline["tasks"], (fast, baseline)
    assert fast["gain"]["ci95"][0] > 0 and fast["customer"]["mean"] <= baseline["customer"]["mean"] + 1e-12
    assert script.markdown([baseline, same, fast]).count("\n") == 1 + 3


def test_docs_show_the_command_and_the_scripted_rows_as_the_script_prints_them(isolated_registries):
    script = load_example("usecases/service_llm.py")
    doc = (EXAMPLES.parent / "docs" / "usecases.md").read_text()
    section = doc.split("### A small language model as a service agent", 1)[1].split("\n## ", 1)[0]
    assert ".venv/bin/python examples/usecases/service_llm.py smollm2.json" in section
    with script.scripted() as honest, script.scripted(quality=0.8, haste=1.0) as exploit:
        rows = [script.row("honest (truthful)", None), script.row("scripted: honest answers", honest),
                script.row("scripted: haste 1, quality 0.8", exploit)]
    for line in script.markdown(rows).splitlines():
        assert line in section, line
