"""The worker's history operations: stored runs, Back, restoring a run, project files.

A mixin of :class:`gui.worker.EngineWorker` (it uses the worker's session, signals and
``_measure_and_record``). The run store's SQLite connection belongs to the worker's thread, so it
is opened there, on first use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from engine.runstore import RunStore, RunStoreError


class WorkerHistory:
    store_dir: Optional[str] = None   # set by the window before the first request
    _store: Optional[RunStore] = None

    def _run_store(self) -> Optional[RunStore]:
        if self._store is None and self.store_dir:
            try:
                self._store = RunStore(self.store_dir)
                self._store.prune_orphans()
            except RunStoreError as exc:   # the app works without it; the log says why
                self.log.emit(f"run history is not kept: {exc}")
                self.store_dir = None
        return self._store

    def _store_run(self, record) -> None:
        store = self._run_store()
        if store is None:
            return
        try:
            self.session.save_run(store, record, self.running_token)   # a Stop skips it
        except (OSError, RunStoreError) as exc:
            self.log.emit(f"run not kept in the history: {exc}")
        self._emit_runs()

    def _emit_runs(self) -> None:
        store = self._run_store()
        if store is not None and self.session is not None:
            self.runs.emit(store.runs(source_sha256=self.session.identity()))

    def _emit_steps(self) -> None:
        self.steps_changed.emit([s.label for s in self.session.steps.steps])

    def _do_runs(self, r) -> None:
        self._emit_runs()

    def _do_back(self, r) -> None:
        step = self.session.back()
        self._emit_state()
        self._emit_steps()
        self._measure_and_record(r, f"back to {step.label if step else 'the original'}",
                                 store=False)

    def _do_restore_run(self, r) -> None:
        store = self._run_store()
        if store is None:
            raise ValueError("no run history is kept here")
        self.session.restore_run(store, int(r.args["run_id"]))
        self._emit_state()
        self._emit_steps()
        self._measure_and_record(r, f"restored: {store.get(int(r.args['run_id'])).label}",
                                 store=False)

    def _do_save_project(self, r) -> None:
        from engine.bundle import save_bundle
        path = save_bundle(r.args["path"], self.session, r.args["recipe"], self._run_store())
        self.log.emit(f"saved project {path}")
        self.project_saved.emit(str(path))

    def _do_open_project(self, r) -> None:
        from engine.bundle import apply_bundle, read_bundle
        from engine.session import Session
        bundle = read_bundle(r.args["path"])
        recipe = bundle.recipe
        session = Session.open(recipe.model, recipe.data, recipe.metrics, recipe.seed, self.log.emit)
        added = apply_bundle(bundle, session, self._run_store())
        self._adopt(session, recipe.model, recipe.data)
        self._emit_steps()
        self.log.emit(f"opened project {Path(r.args['path']).name}: {added} run(s) added to the "
                      f"history")
        self._measure_and_record(r, f"project {Path(r.args['path']).name}", store=False)
