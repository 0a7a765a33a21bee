"""File handling of the main window: opening models, data, recipes and the demos (by dialog, drop
or the recent list), choosing data that suits a model, saving recipes and tables, method files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from PySide6.QtWidgets import QFileDialog, QInputDialog

from engine.config import TEXT_DATA_SOURCES, DataSpec, ModelSpec, Recipe, RecipeError
from engine.bundle import SUFFIX as PROJECT_SUFFIX
from engine.messages import one_line
from engine.models.checkpoints import STATE_DICT_SUFFIXES
from engine.models.fit import checkpoint_classes, data_spec_for_folder, is_model_folder
from engine.text.bilstm import read_sidecar
from engine.text.sources import suggested_data
from engine.validation import check_recipe_for_parameters
from gui.dialogs import OpenDataDialog, OpenModelDialog, confirm_trust
from gui.window.pairing import CHOSE_MODEL

RECENT_LIMIT = 10


class WindowFiles:
    """Opening and saving: every path the user gives the window goes through here.
    A mixin of :class:`gui.main_window.MainWindow`: it uses the widgets and state that
    the window builds."""

    def open_demo(self) -> bool:
        return self.open_session(ModelSpec(), DataSpec())

    def open_session(self, model_spec: ModelSpec, data_spec: DataSpec) -> bool:
        try:
            model_spec.validate()
            data_spec.validate()
        except RecipeError as exc:
            self.show_error("Cannot open", str(exc))
            return False
        if not self.may_discard_work("Opening another model or data", "Open"):
            return False
        self._pending_open = (model_spec, data_spec)
        return self.submit("open", model=model_spec, data=data_spec, metrics=self.metrics_spec,
                           seed=self.method_panel.seed.value())

    def confirm_code(self, spec: ModelSpec) -> bool:
        """Asks for trust when the model source runs code from the file (False: refused)."""
        if spec.source in ("pickle", "python") and spec.path:
            what = "a pickled model" if spec.source == "pickle" else "a Python model file"
            if not confirm_trust(self, spec.path, what):
                return self._declined_trust(spec.path)
            if spec.source == "pickle":
                spec.trust_pickle = True
        return True

    def open_model(self, spec: ModelSpec) -> bool:
        """Asks for trust first when the model source runs code from the file. A text model
        opened while the data is not text for it comes with the data it is usually paired with;
        a model that does not fit the open data is kept and the data asked for (gui.window.pairing)."""
        if not self.confirm_code(spec):
            return False
        data = self.data_for_model(spec)
        if data is None:
            return self._ask_data_for(spec)
        return self.open_pair(spec, data, CHOSE_MODEL)

    def open_model_dialog(self) -> None:
        from engine.models.architectures import architecture_names
        dialog = OpenModelDialog(self, self.model_spec, architecture_names())
        if dialog.exec():
            self.open_model(dialog.spec())

    def open_data_dialog(self) -> None:
        dialog = OpenDataDialog(self, self.data_spec)
        if dialog.exec():
            try:
                data = dialog.spec()
            except RecipeError as exc:
                self.show_error("Cannot open", str(exc))
                return
            self.open_data_path(data)

    def open_path(self, path: str) -> bool:
        """A dropped or recent path: a recipe, a Python model file, a checkpoint, a Hugging Face
        model folder, or a data folder (images in class folders, TSV/CSV texts)."""
        p = Path(path)
        if p.suffix.lower() == ".json":
            return self.open_recipe(path)
        if p.suffix.lower() == PROJECT_SUFFIX:
            return self.open_project(path)
        data = data_spec_for_folder(p)
        if data is not None:
            return self.open_data_path(data)
        spec = self.model_spec_for_path(p)
        if spec is None:
            self.show_error("Cannot open this file", f"{p.name}: PruneLab opens checkpoints "
                            f"({', '.join(STATE_DICT_SUFFIXES)}), Python model files, Hugging Face "
                            f"model folders, data folders and recipes (.json).")
            return False
        return self.open_model(spec) if spec.source else False

    def open_paths(self, paths: list[str]) -> bool:
        """Several dropped paths: a model and a data folder open together as a pair."""
        data = [d for d in (data_spec_for_folder(p) for p in paths) if d is not None]
        models = [p for p in paths if data_spec_for_folder(p) is None]
        if len(data) == 1 and len(models) == 1:
            spec = self.model_spec_for_path(Path(models[0]))
            if spec is None or not spec.source or not self.confirm_code(spec):
                return False
            return self.open_pair(spec, data[0], CHOSE_MODEL)
        return self.open_path(paths[0])

    def model_spec_for_path(self, p: Path) -> Optional[ModelSpec]:
        """The model a path holds; None when it holds none; a spec with no source when the user
        cancelled a question about it."""
        path, suffix = str(p), p.suffix.lower()
        if p.is_dir() and is_model_folder(p):   # config.json, weights, tokenizer
            return ModelSpec(source="hf", path=path)
        if suffix == ".py":
            factory, ok = QInputDialog.getText(self, "Python model", f"Class or factory in {p.name}:")
            if not ok or not factory.strip():
                return ModelSpec(source="")
            return ModelSpec(source="python", path=path, factory=factory.strip(),
                             num_classes=(self.model_spec or ModelSpec()).num_classes)
        if suffix in STATE_DICT_SUFFIXES:
            current = self.model_spec or ModelSpec()
            arch = current.arch if current.source in ("state_dict", "torchvision", "demo") else "lenet"
            # a channel-pruned export carries its architecture in <name>.shapes.json beside it
            shapes = p.with_name(f"{p.stem}.shapes.json")
            if is_bilstm_checkpoint(p):
                arch = "bilstm"
            return ModelSpec(source="state_dict", path=path, arch=arch,
                             num_classes=checkpoint_classes(p) or current.num_classes,
                             shapes=str(shapes) if shapes.is_file() else None)
        return None

    def open_recipe(self, path: str) -> bool:
        """Applies a recipe only when all of it is valid: the same checks as the CLI (recipe on its
        own, then against the open model's parameters), and the method panel is put back as it
        was if showing the recipe fails part-way."""
        try:
            recipe = Recipe.load(path)
            if recipe.model == self.model_spec:
                self._check_recipe_fits(recipe)
            if not self._load_recipe_plugin(recipe):
                return False
        except Exception as exc:   # a hostile file can provoke anything: a dialog, never a crash
            self.show_error("Cannot open recipe", one_line(exc))
            return False
        panel_before = self._method_panel_state()
        try:
            self._show_recipe_method(recipe)
        except Exception as exc:
            self._show_recipe_method(panel_before)
            self.show_error("Cannot open recipe", one_line(exc))
            return False
        self.metrics_spec = recipe.metrics
        self.recipe_export = (recipe.model, recipe.export)
        self._pending_selection = (recipe.prune.include, recipe.prune.per_layer)
        self._pending_recipe = recipe
        self._remember("recipe", path)
        if recipe.model != self.model_spec or recipe.data != self.data_spec:
            return self._open_with_trust(recipe.model, recipe.data)
        self._apply_pending_selection()
        return True

    def _method_panel_state(self) -> Recipe:
        panel = self.method_panel
        return Recipe(prune=panel.prune_spec(), finetune=panel.finetune_spec(),
                      schedule=panel.schedule_spec(), structured=panel.structured_spec(),
                      seed=panel.seed.value())

    def _show_recipe_method(self, recipe: Recipe) -> None:
        self.method_panel.set_prune_spec(recipe.prune)
        self.method_panel.set_finetune_spec(recipe.finetune)
        self.method_panel.set_schedule_spec(recipe.schedule)
        self.method_panel.set_structured_spec(recipe.structured)
        self.method_panel.seed.setValue(recipe.seed)

    def _check_recipe_fits(self, recipe: Recipe) -> None:
        """engine.validation's checks against the open model (the panel's names: the GUI thread
        never touches the live model)."""
        info = self.model_panel.info
        if info is not None:
            check_recipe_for_parameters(recipe, [p.name for p in info.prunable])

    def _declined_trust(self, path: str) -> bool:
        self.status_label.setText(f"Not opened: {Path(path).name} was not trusted, so none of "
                                  f"its code ran")
        self.log_view.append(f"not opened: you declined to trust {path}")
        return False

    def _open_with_trust(self, model: ModelSpec, data: DataSpec) -> bool:
        """A recipe's trust_pickle is not trust: the person at the window is asked every time."""
        if model.source in ("pickle", "python") and model.path:
            if not confirm_trust(self, model.path, "a model"):
                return self._declined_trust(model.path)
            model.trust_pickle = model.source == "pickle"
        return self.open_pair(model, data, CHOSE_MODEL)

    def _apply_pending_selection(self) -> None:
        pending = getattr(self, "_pending_selection", None)
        recipe = getattr(self, "_pending_recipe", None)
        if pending is not None and self.model_panel.info is not None:
            self._pending_selection = self._pending_recipe = None
            try:
                if recipe is not None:
                    self._check_recipe_fits(recipe)
                self.model_panel.apply_selection(*pending)
            except (KeyError, RecipeError) as exc:
                self.show_error("Recipe does not fit this model", one_line(exc))

    def open_recipe_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open recipe", self._last_dir(), "Recipes (*.json)")
        if path:
            self.open_recipe(path)

    def save_recipe_dialog(self) -> None:
        recipe = self._checked_recipe()
        if recipe is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save recipe", str(Path(self._last_dir()) / "recipe.json"),
                                              "Recipes (*.json)")
        if path:
            self.save_recipe(path)

    def save_recipe(self, path: str) -> None:
        recipe = self.recipe()
        recipe.save(path)
        self._remember("recipe", path)
        self.log_view.append(f"saved recipe {path}")

    def save_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save comparison", str(Path(self._last_dir()) / "comparison.csv"),
                                              "CSV (*.csv)")
        if path:
            self.compare.save_csv(path)
            self.log_view.append(f"saved comparison {path}")

    def dragEnterEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls and all(u.isLocalFile() and (Path(u.toLocalFile()).is_dir() or
                                             Path(u.toLocalFile()).suffix.lower() in
                                             (*STATE_DICT_SUFFIXES, ".json", ".py", PROJECT_SUFFIX))
                        for u in urls[:2]):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths[:2])

    def recent_files(self) -> list[dict]:
        try:
            items = json.loads(self.settings.value("recent", "[]"))
        except (TypeError, ValueError):
            return []
        return [i for i in items if isinstance(i, dict) and "path" in i and "kind" in i]

    def _remember(self, kind: str, path: str) -> None:
        path = str(Path(path).resolve())
        items = [i for i in self.recent_files() if i["path"] != path]
        items.insert(0, {"kind": kind, "path": path})
        self.settings.setValue("recent", json.dumps(items[:RECENT_LIMIT]))
        self.settings.setValue("last_dir", str(Path(path).parent))
        self._refresh_recent()

    def _last_dir(self) -> str:
        return str(self.settings.value("last_dir", str(Path.cwd())))

    def _refresh_recent(self) -> None:
        """The menu lists the recent files that still exist (gone ones are dropped from the
        settings too), then Clear recent."""
        self.recent_menu.clear()
        items = self.recent_files()
        present = [i for i in items if Path(i["path"]).exists()]
        if len(present) != len(items):
            self.settings.setValue("recent", json.dumps(present))
        for item in present:
            name = Path(item["path"]).name.replace("&", "&&")   # no mnemonic from a file name
            action = self.recent_menu.addAction(f"{name}  ({item['kind']})")
            action.setToolTip(item["path"])
            action.triggered.connect(lambda _c=False, p=item["path"]: self.open_path(p))
        self.recent_menu.addSeparator()
        self.clear_recent_action = self.recent_menu.addAction("&Clear recent", self.clear_recent)
        self.clear_recent_action.setEnabled(bool(present))
        self.recent_menu.setEnabled(bool(present))

    def clear_recent(self) -> None:
        self.settings.setValue("recent", "[]")
        self._refresh_recent()

    def _offer_pickle(self, model: ModelSpec, data: DataSpec, message: str) -> None:
        pickled = ModelSpec(source="pickle", path=model.path, num_classes=model.num_classes)
        if confirm_trust(self, model.path, "a full pickled model"):
            pickled.trust_pickle = True
            self.open_session(pickled, data)
        else:
            self.status_label.setText(message)

    def open_text_demo(self) -> bool:
        return self.open_session(ModelSpec(source="text_demo"), DataSpec(source="text_demo"))

    def data_for_model(self, spec: ModelSpec) -> Optional[DataSpec]:
        """The current data when it suits ``spec``; else the data such a model is usually opened
        with (engine.text.sources.suggested_data); None when only the user can say."""
        current = self.data_spec or DataSpec()
        wanted = text_data_kind(spec)
        if wanted is None:   # an image model: the image demo replaces text data for the demo LeNet
            if spec.source == "demo" and current.source in TEXT_DATA_SOURCES:
                return DataSpec()
            return current
        if current.source in wanted:
            return current
        suggested = suggested_data(spec.source, spec.path)
        if suggested is None and spec.source == "state_dict":
            suggested = DataSpec(source="text_demo")   # read with the checkpoint's own vocabulary
        if suggested is not None:
            self.log_view.append(f"{spec.source} is a text model: opening it with "
                                 f"{suggested.source} data" + (f" from {suggested.root}"
                                                               if suggested.root else ""))
        return suggested

    def _ask_data_for(self, spec: ModelSpec) -> bool:
        """No data to guess for this text model: the Open data dialog, preset to its kind."""
        kind = text_data_kind(spec)
        dialog = OpenDataDialog(self, DataSpec(source=kind[-1] if kind else "demo"))
        dialog.setWindowTitle(f"Open data for {Path(spec.path or spec.source).name}")
        if not dialog.exec():
            self.status_label.setText("Not opened: the model needs text data")
            return False
        return self.open_session(spec, dialog.spec())

    def load_method_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load pruning method file", self._last_dir(),
                                              "Python files (*.py)")
        if path:
            self.load_method_file(path)

    def load_method_file(self, path: str) -> list[str]:
        """Asks for trust, then registers the file's methods beside the built-in criteria and
        selects the first; the method panel's spec then names the file as its ``plugin``, so a
        saved recipe loads it again. Returns the names added ([] when refused or on error)."""
        from engine.pruning.custom import load_plugin
        if self.busy_op is not None:
            self.status_label.setText(f"Busy with {self.busy_op}: press Stop first")
            return []
        if not confirm_trust(self, path, "a pruning method file"):
            self.status_label.setText(f"Not loaded: {Path(path).name}")
            return []
        try:
            names = load_plugin(path)
        except Exception as exc:  # the user's code may raise anything: a dialog, never a crash
            self.show_error("Cannot load the method file", str(exc).strip() or type(exc).__name__)
            return []
        self.method_panel.refresh_components(select_method=names[0])
        self.log_view.append(f"loaded {', '.join(names)} from {path}")
        self.status_label.setText(f"Loaded {', '.join(names)} from {Path(path).name}")
        return names

    def _load_recipe_plugin(self, recipe: Recipe) -> bool:
        """A recipe naming a method file: load it, after asking for trust, before the method panel
        shows the recipe's method (a file this session already loaded is not asked about again)."""
        from engine.pruning.custom import loaded_plugins
        plugin = recipe.prune.plugin
        if not plugin or str(Path(plugin).expanduser().resolve()) in loaded_plugins():
            return True
        return bool(self.load_method_file(plugin))


def text_data_kind(spec: ModelSpec) -> Optional[tuple[str, ...]]:
    """The data sources a text model reads (None for an image model)."""
    if spec.source == "hf":
        return ("hf_tsv",)
    if spec.source == "text_demo" or (spec.source == "state_dict" and spec.arch == "bilstm"):
        return ("text_demo", "text_csv", "text_tsv")
    return None


def is_bilstm_checkpoint(path: Path) -> bool:
    """A PruneLab BiLSTM export has its settings JSON (vocabulary, sizes) beside it."""
    try:
        return read_sidecar(path) is not None
    except ValueError:
        return False

