"""The diskcache store: sessions, O(1) appends, the run journal and saved tool results."""

from __future__ import annotations

from react_agent.memory import Store, default_store_path


def say(text: str, role: str = "user") -> dict:
    return {"role": role, "content": text}


def test_create_append_and_read(store):
    session = store.create_session("s1", user_id="ann", agent="helper")
    assert session.append(say("hi")) == 0
    assert session.append(say("hello", "assistant")) == 1
    assert session.messages() == [say("hi"), say("hello", "assistant")]
    assert len(session) == 2
    assert store.messages("s1", start=1) == [say("hello", "assistant")]
    info = store.sessions()[0]
    assert (info.id, info.user_id, info.agent, info.messages) == ("s1", "ann", "helper", 2)


def test_creating_an_existing_session_keeps_it(store):
    store.create_session("s1", user_id="ann")
    store.append("s1", say("hi"))
    store.create_session("s1", user_id="bob")
    assert store.messages("s1") == [say("hi")]
    assert [s.user_id for s in store.sessions()] == ["ann"]


def test_append_creates_a_missing_session(store):
    store.append("fresh", say("hi"))
    assert store.exists("fresh")
    assert store.messages("fresh") == [say("hi")]


def test_sessions_are_listed_by_user(store):
    store.create_session("a1", user_id="ann")
    store.create_session("b1", user_id="bob")
    store.create_session("a2", user_id="ann")
    assert [s.id for s in store.sessions(user_id="ann")] == ["a1", "a2"]
    assert [s.id for s in store.sessions(user_id="bob")] == ["b1"]
    assert sorted(s.id for s in store.sessions()) == ["a1", "a2", "b1"]
    assert store.sessions(user_id="nobody") == []


def test_delete_session_removes_messages_results_and_runs(store):
    store.create_session("s1", user_id="ann")
    store.create_session("s2", user_id="ann")
    store.append("s1", {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
    store.append("s1", {"role": "tool", "tool_call_id": "c1", "content": "done"})
    store.save_tool_result("s1", "c1", {"kind": "ok", "content": "done"})
    store.start_run("r1", {"session": "s1"})
    store.add_step("r1", 0, {"index": 0})
    store.update_run("r1", steps=1)
    store.append("s2", say("keep me"))

    assert store.session("s1").delete() is True
    assert not store.exists("s1")
    assert store.messages("s1") == []
    assert store.tool_result("s1", "c1") is None
    assert store.run("r1") is None
    assert store.runs("s1") == []
    assert [s.id for s in store.sessions()] == ["s2"]
    assert store.messages("s2") == [say("keep me")]
    assert sorted(store.cache.iterkeys()) == ["m:s2:0", "n:s2", "runs", "s:s2", "sessions"]
    assert store.delete_session("s1") is False


def test_append_writes_one_key_and_leaves_history_alone(store, monkeypatch):
    for i in range(50):
        store.append("s1", say(f"message {i}"))
    written: list[str] = []
    real_set = store.cache.set

    def spy_set(key, value, *args, **kwargs):
        written.append(key)
        return real_set(key, value, *args, **kwargs)

    monkeypatch.setattr(store.cache, "set", spy_set)
    keys_before = set(store.cache.iterkeys())
    assert store.append("s1", say("the 51st")) == 50
    assert written == ["m:s1:50"]  # plus the counter bump; no earlier message is rewritten
    assert set(store.cache.iterkeys()) - keys_before == {"m:s1:50"}
    assert store.count("s1") == 51
    assert store.messages("s1", start=49) == [say("message 49"), say("the 51st")]


def test_run_journal(store):
    store.start_run("r1", {"run_id": "r1", "session": "s1", "status": "running"})
    store.add_step("r1", 0, {"index": 0, "thought": "first"})
    store.add_step("r1", 1, {"index": 1, "answer": "done"})
    store.update_run("r1", steps=2, status="completed")
    assert store.run("r1")["status"] == "completed"
    assert store.run_steps("r1") == [{"index": 0, "thought": "first"}, {"index": 1, "answer": "done"}]
    store.start_run("r2", {"run_id": "r2", "session": "s1"})
    store.start_run("r3", {"run_id": "r3", "session": "other"})
    assert [run_id for run_id, _ in store.runs("s1")] == ["r1", "r2"]
    assert store.run("missing") is None


def test_tool_results(store):
    assert store.tool_result("s1", "c1") is None
    store.save_tool_result("s1", "c1", {"kind": "ok", "content": "42"})
    assert store.tool_result("s1", "c1") == {"kind": "ok", "content": "42"}
    assert store.tool_result("s2", "c1") is None


def test_a_second_store_on_the_same_folder_sees_the_data(store):
    store.append("s1", say("hi"))
    other = Store(store.path)
    try:
        assert other.messages("s1") == [say("hi")]
    finally:
        other.close()


def test_default_path_follows_react_agent_home(tmp_path):
    assert default_store_path() == tmp_path / "home" / "store"
    assert Store().path == tmp_path / "home" / "store"
