//! `/manifest.xml`: the Office add-in manifest (a MailApp with read and compose
//! surfaces) that lets classic Outlook and Outlook on the web side-load the pane.
//! Its Id is fixed so that a re-side-loaded manifest replaces the old one.

/// The add-in's stable Id (a random UUID chosen once for crmproxy).
pub const ADDIN_ID: &str = "5f0c2b1e-8f5a-4c55-9a0e-3c7d2f6b9e41";

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The manifest for a pane served at `origin` (e.g. `https://localhost:8443`).
pub fn manifest(origin: &str) -> String {
    let o = xml_escape(origin.trim_end_matches('/'));
    let version = env!("CARGO_PKG_VERSION");
    let version = format!("{version}.0");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<OfficeApp xmlns="http://schemas.microsoft.com/office/appforoffice/1.1"
           xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
           xmlns:bt="http://schemas.microsoft.com/office/officeappbasictypes/1.0"
           xmlns:mailappor="http://schemas.microsoft.com/office/mailappversionoverrides/1.0"
           xsi:type="MailApp">
  <Id>{ADDIN_ID}</Id>
  <Version>{version}</Version>
  <ProviderName>crmproxy</ProviderName>
  <DefaultLocale>en-US</DefaultLocale>
  <DisplayName DefaultValue="crmproxy CRM"/>
  <Description DefaultValue="CRM email tracking: who the people of this message are and what it is linked to."/>
  <IconUrl DefaultValue="{o}/assets/icon-64.png"/>
  <HighResolutionIconUrl DefaultValue="{o}/assets/icon-128.png"/>
  <SupportUrl DefaultValue="{o}/"/>
  <AppDomains>
    <AppDomain>{o}</AppDomain>
  </AppDomains>
  <Hosts>
    <Host Name="Mailbox"/>
  </Hosts>
  <Requirements>
    <Sets>
      <Set Name="Mailbox" MinVersion="1.1"/>
    </Sets>
  </Requirements>
  <FormSettings>
    <Form xsi:type="ItemRead">
      <DesktopSettings>
        <SourceLocation DefaultValue="{o}/?office=1"/>
        <RequestedHeight>450</RequestedHeight>
      </DesktopSettings>
    </Form>
    <Form xsi:type="ItemEdit">
      <DesktopSettings>
        <SourceLocation DefaultValue="{o}/?office=1"/>
      </DesktopSettings>
    </Form>
  </FormSettings>
  <Permissions>ReadItem</Permissions>
  <Rule xsi:type="RuleCollection" Mode="Or">
    <Rule xsi:type="ItemIs" ItemType="Message" FormType="ReadOrEdit"/>
    <Rule xsi:type="ItemIs" ItemType="Appointment" FormType="ReadOrEdit"/>
  </Rule>
  <DisableEntityHighlighting>false</DisableEntityHighlighting>
  <VersionOverrides xmlns="http://schemas.microsoft.com/office/mailappversionoverrides" xsi:type="VersionOverridesV1_0">
    <Requirements>
      <bt:Sets DefaultMinVersion="1.3">
        <bt:Set Name="Mailbox"/>
      </bt:Sets>
    </Requirements>
    <Hosts>
      <Host xsi:type="MailHost">
        <DesktopFormFactor>
          <ExtensionPoint xsi:type="MessageReadCommandSurface">
            <OfficeTab id="TabDefault">
              <Group id="crmproxyReadGroup">
                <Label resid="groupLabel"/>
                <Control xsi:type="Button" id="crmproxyReadButton">
                  <Label resid="buttonLabel"/>
                  <Supertip>
                    <Title resid="buttonLabel"/>
                    <Description resid="buttonTip"/>
                  </Supertip>
                  <Icon>
                    <bt:Image size="16" resid="icon16"/>
                    <bt:Image size="32" resid="icon32"/>
                    <bt:Image size="80" resid="icon80"/>
                  </Icon>
                  <Action xsi:type="ShowTaskpane">
                    <SourceLocation resid="paneUrl"/>
                  </Action>
                </Control>
              </Group>
            </OfficeTab>
          </ExtensionPoint>
          <ExtensionPoint xsi:type="MessageComposeCommandSurface">
            <OfficeTab id="TabDefault">
              <Group id="crmproxyComposeGroup">
                <Label resid="groupLabel"/>
                <Control xsi:type="Button" id="crmproxyComposeButton">
                  <Label resid="buttonLabel"/>
                  <Supertip>
                    <Title resid="buttonLabel"/>
                    <Description resid="buttonTip"/>
                  </Supertip>
                  <Icon>
                    <bt:Image size="16" resid="icon16"/>
                    <bt:Image size="32" resid="icon32"/>
                    <bt:Image size="80" resid="icon80"/>
                  </Icon>
                  <Action xsi:type="ShowTaskpane">
                    <SourceLocation resid="paneUrl"/>
                  </Action>
                </Control>
              </Group>
            </OfficeTab>
          </ExtensionPoint>
        </DesktopFormFactor>
      </Host>
    </Hosts>
    <Resources>
      <bt:Images>
        <bt:Image id="icon16" DefaultValue="{o}/assets/icon-16.png"/>
        <bt:Image id="icon32" DefaultValue="{o}/assets/icon-32.png"/>
        <bt:Image id="icon80" DefaultValue="{o}/assets/icon-80.png"/>
      </bt:Images>
      <bt:Urls>
        <bt:Url id="paneUrl" DefaultValue="{o}/?office=1"/>
      </bt:Urls>
      <bt:ShortStrings>
        <bt:String id="groupLabel" DefaultValue="CRM"/>
        <bt:String id="buttonLabel" DefaultValue="crmproxy"/>
      </bt:ShortStrings>
      <bt:LongStrings>
        <bt:String id="buttonTip" DefaultValue="Open the CRM pane for this message."/>
      </bt:LongStrings>
    </Resources>
  </VersionOverrides>
</OfficeApp>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_points_at_the_pane() {
        let m = manifest("https://localhost:8443");
        assert!(m.contains(r#"xsi:type="MailApp""#));
        assert!(m.contains(&format!("<Id>{ADDIN_ID}</Id>")));
        assert!(m.contains(r#"<SourceLocation DefaultValue="https://localhost:8443/?office=1"/>"#));
        assert!(m.contains(r#"xsi:type="ItemRead""#) && m.contains(r#"xsi:type="ItemEdit""#));
        assert!(
            m.contains("MessageReadCommandSurface") && m.contains("MessageComposeCommandSurface")
        );
        assert!(!m.contains("http://localhost"), "only https URLs");
    }
}
