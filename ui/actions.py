"""Small GUI actions of the Plugins > OreMap menu."""

from qgis.PyQt.QtWidgets import QMessageBox


def show_oremap_toolbox(iface):
    """Show the Processing Toolbox with its search set to OreMap's algorithms."""
    import qgis.utils

    toolbox = getattr(qgis.utils.plugins.get("processing"), "toolbox", None)
    if toolbox is not None:
        toolbox.setVisible(True)
        toolbox.raise_()
        search = getattr(toolbox, "searchBox", None)
        if search is not None:
            search.setText("oremap")
        return
    QMessageBox.information(iface.mainWindow(), "OreMap",
                            "Open the Processing Toolbox (Ctrl+Alt+T) and look for the OreMap group.")


def about_text(provider):
    """HTML listing the provider's version and algorithms by group."""
    if provider is None:
        return "<p>The OreMap Processing provider is not loaded.</p>"
    groups = {}
    for alg in provider.algorithms():
        groups.setdefault(alg.group(), []).append(f"{alg.displayName()} (<code>{alg.id()}</code>)")
    html = [f"<h3>{provider.longName()}</h3>",
            "<p>Run the algorithms from the Processing Toolbox, the Graphical Modeler or "
            "<code>qgis_process</code>. Models: <i>Plugins &gt; OreMap &gt; Model library</i>. Settings (memory "
            "budget, threads, compute device, model folder): <i>Plugins &gt; OreMap &gt; Settings</i> or "
            "<i>Settings &gt; Options &gt; OreMap</i>. The user guide, one workflow per family with screenshots, is "
            "<code>docs/user_guide.md</code> in the plugin's folder.</p>"]
    for group in sorted(groups):
        html.append(f"<b>{group}</b><ul>" + "".join(f"<li>{a}</li>" for a in sorted(groups[group])) + "</ul>")
    return "\n".join(html)


def show_about(parent, provider):
    QMessageBox.about(parent, "About OreMap", about_text(provider))
